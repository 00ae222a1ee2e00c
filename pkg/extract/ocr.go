package extract

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// ocrDPI is the resolution pages are rendered at for OCR: tesseract's
// accuracy drops below 300 dpi for body-text sizes.
const ocrDPI = 300

// ocrPages OCRs those of pages (numbers, ascending) that show an image,
// and returns the ones that gave text, with OCR set. Pages with no image
// at all are blank (or draw text as vector paths, which is rare) and are not
// rendered: rendering and OCR cost about a second a page.
func (e *Extractor) ocrPages(ctx context.Context, path string, pages []int) ([]ragpipe.Page, error) {
	dir, err := os.MkdirTemp(e.tempDir, "ragpipe-ocr-*")
	if err != nil {
		return nil, fmt.Errorf("extract pdf: ocr: %w", err)
	}
	defer os.RemoveAll(dir)
	var out []ragpipe.Page
	done := 0
	for _, n := range pages {
		has, err := e.pageHasImage(ctx, path, n)
		if err != nil {
			return nil, err
		}
		if !has {
			continue
		}
		if done++; done > e.limits.MaxOCRPages {
			return nil, ragpipe.Errorf(ragpipe.CodeLimitExceeded, "PDF has more than %d pages that need OCR", e.limits.MaxOCRPages)
		}
		text, err := e.ocrPage(ctx, path, n, dir)
		if err != nil {
			return nil, err
		}
		if text = normalize(text); text != "" {
			out = append(out, ragpipe.Page{Number: n, Text: text, OCR: true})
		}
	}
	return out, nil
}

// pageHasImage asks pdfimages whether page n draws an image.
func (e *Extractor) pageHasImage(ctx context.Context, path string, n int) (bool, error) {
	p := strconv.Itoa(n)
	cmd := e.limitedCommand(ctx, e.pdfimages, "-list", "-f", p, "-l", p, path)
	stdout := &capBuffer{max: 1 << 20}
	stderr := &capBuffer{max: stderrMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return false, e.pdfFailure(ctx, err, false, stderr.buf.String())
	}
	// A header of two lines, then one line per image.
	return strings.Count(stdout.buf.String(), "\n") > 2, nil
}

// ocrPage renders page n to a PNG in dir with pdftoppm and reads it with
// tesseract.
func (e *Extractor) ocrPage(ctx context.Context, path string, n int, dir string) (string, error) {
	p := strconv.Itoa(n)
	root := filepath.Join(dir, "page"+p)
	render := e.limitedCommand(ctx, e.pdftoppm, "-r", strconv.Itoa(ocrDPI), "-f", p, "-l", p,
		"-png", "-gray", "-singlefile", path, root)
	stderr := &capBuffer{max: stderrMax}
	render.Stderr = stderr
	if err := render.Run(); err != nil {
		return "", e.pdfFailure(ctx, err, false, stderr.buf.String())
	}
	img := root + ".png"
	defer os.Remove(img)
	ocr := e.limitedCommand(ctx, e.tesseract, img, "stdout", "-l", e.ocrLang)
	stdout := &capBuffer{max: e.limits.MaxTextBytes, failOnOverflow: true}
	stderr = &capBuffer{max: stderrMax}
	ocr.Stdout, ocr.Stderr = stdout, stderr
	if err := ocr.Run(); err != nil {
		if ctx.Err() != nil || stdout.overflow {
			return "", e.pdfFailure(ctx, err, stdout.overflow, stderr.buf.String())
		}
		return "", fmt.Errorf("extract pdf: tesseract on page %d: %w: %s", n, err, lastLines(stderr.buf.String(), 3))
	}
	return strings.ToValidUTF8(stdout.buf.String(), ""), nil
}
