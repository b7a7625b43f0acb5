"""How much of a document the built-in models read: its lead.

News states its point first, so the extractive summariser picks from, and the built-in
sentiment model pools, the first `LEAD_SENTENCES` sentences (the title aside); the text column
keeps everything. On the 100 CNN/DailyMail dev articles (19.5 sentences on average) the
summariser scores the same ROUGE-2 from the first 15 as from all (bench/RESULTS.md), and
the document label stays the same for 97 of 100 articles (300 of 300 Reuters-21578 stories).
On long articles it is most of the models' work saved.
"""

# The one home of the lead: the embed step's window (`ModelNames.embed_window`), the LoRA
# sentiment model's and the extractive summariser's `read_sentences` all read it, and
# `ModelNames.check` fails a run, before any work, where the ones sharing a pass disagree.
LEAD_SENTENCES = 15

# The entities step reads the title and the lead paragraph: the first sentences name who the
# story is about. Tagging costs about 2.3 ms a sentence (bench/RESULTS.md), so the whole lead
# would cost a third of the run.
ENTITY_SENTENCES = 3
