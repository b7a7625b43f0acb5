"""How much of a document the built-in models read: its lead.

News states its point first, so the extractive summariser picks from, and the built-in
sentiment model pools, the first `LEAD_SENTENCES` sentences (the title aside); the text column
keeps everything. On the 100 CNN/DailyMail dev articles (19.5 sentences on average) the
summariser scores the same ROUGE-2 from the first 15 as from all (bench/RESULTS.md), and
the document label stays the same for 97 of 100 articles (300 of 300 Reuters-21578 stories).
On long articles it is most of the models' work saved.
"""

# The one home of the lead: the embed step's window (`ChosenModels.embed_window`), the LoRA
# sentiment model's and the extractive summariser's `read_sentences` all read it, and
# `ChosenModels.check` fails a run, before any work, where the ones sharing a pass disagree.
LEAD_SENTENCES = 15

# The entities step reads the title and the lead paragraph: the first sentences name who the
# story is about. Each of them costs an NER pass (about 4 ms) and an entity-model pass per
# sentence with a name (about 4 ms): three sentences cost +38 % on bench.speed, two fit the
# +30 % budget (+25 %; bench/RESULTS.md).
ENTITY_SENTENCES = 2
