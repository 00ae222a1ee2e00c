#!/usr/bin/env python3
"""Writes the hand-made hostile PDFs and the DOCX/HTML fixtures in testdata/.

Run from testdata/: python3 make-fixtures.py (Python 3 standard library only).
The output is deterministic; see README.md for what each file is for.
"""
import io
import zipfile
import zlib


def pdf(objects, trailer_extra=b"", xref_shift=0, root=1):
    """A PDF with the given object bodies (numbered from 1) and a classic xref."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % (off + xref_shift))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, root, trailer_extra, xref))
    return out.getvalue()


def stream(data, compress=False):
    extra = b""
    if compress:
        data = zlib.compress(data, 9)
        extra = b" /Filter /FlateDecode"
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def text_page_pdf(content, compress=False):
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        stream(content, compress),
        FONT,
    ])


HELLO = b"BT /F1 12 Tf 72 700 Td (Hostile ragpipe fixture text.) Tj ET"

# A content stream of 8 KiB compressed that inflates to about 20 MB of text.
line = b"BT /F1 12 Tf 72 700 Td (" + b"bomb " * 40 + b") Tj ET\n"
with open("bomb.pdf", "wb") as f:
    f.write(text_page_pdf(line * (20_000_000 // len(line)), compress=True))

# The page tree's only kid is the tree itself.
with open("cyclic.pdf", "wb") as f:
    f.write(pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
    ]))

# A page whose resources nest 100,000 arrays deep.
with open("nested.pdf", "wb") as f:
    f.write(pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Deep " + b"[" * 100_000 + b"]" * 100_000 + b" >>",
    ]))

# Every xref offset is 7 bytes off; readers must rebuild the table by scanning.
with open("brokenxref.pdf", "wb") as f:
    f.write(pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        stream(HELLO),
        FONT,
    ], xref_shift=7))

# One page with text, unencrypted: the input of empty-password.pdf (see README).
with open("hello.pdf", "wb") as f:
    f.write(text_page_pdf(HELLO))



def lines(*texts):
    """A content stream showing each text on its own line, 40 points apart."""
    return b"BT /F1 12 Tf 72 700 Td " + b" 0 -40 Td ".join(b"(%s) Tj" % t for t in texts) + b" ET"


# Two pages and a damaged outline: an item without a target holding an item
# whose /Next is itself, an item pointing to a missing object, and titles
# with XML's special characters.
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents %d 0 R >>"
with open("badoutline.pdf", "wb") as f:
    f.write(pdf([
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 7 0 R] /Count 2 >>",
        PAGE % 4,
        stream(lines(b"Preface words.", b"Tom & <Jerry>", b"Body of the first section.")),
        FONT,
        b"<< /Type /Outlines /First 9 0 R /Last 13 0 R /Count 5 >>",
        PAGE % 8,
        stream(lines(b"Loop body text.", b"The End", b"Final words.")),
        b"<< /Title (Tom & <Jerry>) /Parent 6 0 R /Next 10 0 R /Dest [3 0 R /XYZ 0 792 0] >>",
        b"<< /Title (No destination) /Parent 6 0 R /Prev 9 0 R /Next 12 0 R /First 11 0 R /Last 11 0 R /Count 1 >>",
        b"<< /Title (Loop) /Parent 10 0 R /Next 11 0 R /Dest [7 0 R /XYZ 0 792 0] >>",
        b"<< /Title (Bad page) /Parent 6 0 R /Prev 10 0 R /Next 13 0 R /Dest [99 0 R /XYZ 0 792 0] >>",
        b"<< /Title (The End) /Parent 6 0 R /Prev 12 0 R /Dest [7 0 R /XYZ 0 792 0] >>",
    ]))

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CT = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
      '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
      '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
      '<Default Extension="xml" ContentType="application/xml"/>'
      '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
      '<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
      '</Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        '</Relationships>')
# Style IDs in German, as a German Word writes them: headings are found by name.
STYLES = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:styles xmlns:w="{W}">'
          '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>'
          '</w:styles>')


def p(text, style=None, num=None):
    ppr = ""
    if style or num is not None:
        ppr = "<w:pPr>"
        if style:
            ppr += f'<w:pStyle w:val="{style}"/>'
        if num is not None:
            ppr += f'<w:numPr><w:ilvl w:val="{num}"/><w:numId w:val="1"/></w:numPr>'
        ppr += "</w:pPr>"
    runs = "".join(f'<w:r><w:t xml:space="preserve">{t}</w:t></w:r>' for t in text.split("|"))
    return f"<w:p>{ppr}{runs}</w:p>"


def cell(*paras):
    return "<w:tc>" + "".join(p(x) for x in paras) + "</w:tc>"


BODY = "".join([
    p("Quarterly report", "Titel"),
    p("Summary", "berschrift1"),
    p("Revenue |grew |by a tenth."),
    p("Risks", "berschrift2"),
    p("Supply chains.", num=0),
    p("Exchange rates.", num=1),
    '<w:p><w:r><w:t>Kept</w:t></w:r><w:del w:id="1"><w:r><w:delText>deleted</w:delText></w:r></w:del>'
    '<w:r><w:tab/><w:t>after tab.</w:t></w:r></w:p>',
    "<w:tbl>",
    "<w:tr>" + cell("Region") + cell("Sales") + "</w:tr>",
    "<w:tr>" + cell("North", "and East") + cell("12") + "</w:tr>",
    "</w:tbl>",
    p("Closing words."),
])
DOC = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
       f'<w:document xmlns:w="{W}"><w:body>{BODY}<w:sectPr/></w:body></w:document>')

FIXED = (2024, 1, 1, 0, 0, 0)


def docx(name, parts):
    with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as z:
        for part, data in parts:
            z.writestr(zipfile.ZipInfo(part, FIXED), data, zipfile.ZIP_DEFLATED)


docx("sample.docx", [("[Content_Types].xml", CT), ("_rels/.rels", RELS),
                     ("word/styles.xml", STYLES), ("word/document.xml", DOC)])

# document.xml inflates to 100 MB (of blanks inside the body) from about 100 KB.
bomb_doc = (f'<?xml version="1.0"?><w:document xmlns:w="{W}"><w:body>' + " " * 100_000_000
            + "</w:body></w:document>")
docx("bomb.docx", [("[Content_Types].xml", CT), ("_rels/.rels", RELS), ("word/document.xml", bomb_doc)])

# Elements nested 100,000 deep.
deep_doc = (f'<?xml version="1.0"?><w:document xmlns:w="{W}"><w:body>' + "<w:p>" * 100_000
            + "</w:p>" * 100_000 + "</w:body></w:document>")
docx("deep.docx", [("[Content_Types].xml", CT), ("_rels/.rels", RELS), ("word/document.xml", deep_doc)])
