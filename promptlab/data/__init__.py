"""Examples: reading, sampling and checking them (docs/architecture.md, layer 3).

    readers.py          labelled or unlabelled rows: JSONL/CSV/TSV files, registered sources, hub data sets
    entity_readers.py   token sequences with entity tags (CoNLL, JSONL, sources, hub data sets)
    sampling.py         LM-BFF's k-shot split per class; seeded stratified splits
    entity_sampling.py  the greedy k-shot split per entity type
    overlap.py          a train pool without the test split's texts
    tags.py             tag schemes (IOB1, IOB2, BIOES, BMES) and spans
    words.py            raw text to tokens with character offsets, and spans back onto the text
    knowledge.py        knowledge bases read into passages
    sources/            named offline data sets that ship inside registry packages
"""
