-- Where each chunk came from, for citations (core/chunk/location.ts): {"pages": [first, last]} for paged text
-- (PDFs), {"headings": ["Travel", "Expenses"]} for text with headings, both, or null. Never embedded or searched:
-- a page inserted before a passage moves its location without paying for its embedding again. Chunks stored
-- before this migration get theirs when their document is next ingested (CHUNKING "3" re-chunks it, reusing
-- every embedding).
alter table chunks add column location jsonb;
