-- Each chunk keeps the heading path it falls under and whether its text was
-- recognised by OCR.
ALTER TABLE chunks ADD COLUMN section text NOT NULL DEFAULT '';
ALTER TABLE chunks ADD COLUMN ocr boolean NOT NULL DEFAULT false;
