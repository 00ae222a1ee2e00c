package ragpipe

// Page is the text of one page of a document, as extraction produces it and
// chunking consumes it (and the pages artifact stores it between the two).
// Number counts from 1 in the source document; pages without text are left
// out, so numbers may skip. Documents without pages (text, Markdown, HTML,
// DOCX) are a single page numbered 1.
//
// Text from Markdown, HTML and DOCX is Markdown: headings are ATX headings
// ("## Title"), list items start with "- ", table rows are cells joined by
// " | ", so one chunker can follow the structure of all of them. OCR is true
// when the text was recognised from an image of the page by tesseract rather
// than read from the PDF's text layer.
//
// Headings are where sections start in Text, in order of Line, for text
// whose headings are known apart from it: a PDF's outline (bookmarks). PDFs
// without an outline have none, and the other formats mark their headings
// in the text instead.
type Page struct {
	Number   int
	Text     string
	OCR      bool      `json:",omitempty"`
	Headings []Heading `json:",omitempty"`
}

// Heading starts a section titled Title at depth Level (from 1) at line Line
// of a page's Text (lines end at "\n", counted from 0). The Lines lines from
// there are the heading as printed, which the chunker cuts out as a block of
// its own; Lines is 0 when the title was not found in the text, and the
// section then starts at Line without heading text (the top of the page, or
// right after the heading before it). Headings past the end of the text
// start their section after it.
type Heading struct {
	Level int
	Title string
	Line  int
	Lines int
}
