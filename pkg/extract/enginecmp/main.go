// Command enginecmp compares PDF text engines on a directory of PDFs:
// pdftotext (poppler), go-pdfium (WebAssembly) and ledongthuc/pdf (pure Go).
// Usage: enginecmp -engine pdfium|ledongthuc DIR  (prints per-file recall vs pdftotext, pages/s)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klippa-app/go-pdfium"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/ledongthuc/pdf"
)

func words(s string) map[string]int {
	m := map[string]int{}
	for _, w := range strings.Fields(s) {
		m[w]++
	}
	return m
}

func recall(ref, got map[string]int) (int, int) {
	hit, tot := 0, 0
	for w, n := range ref {
		tot += n
		hit += min(n, got[w])
	}
	return hit, tot
}

func ledong(path string) (text string, pages int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	f, r, err := pdf.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	var b strings.Builder
	n := r.NumPage()
	for i := 1; i <= n; i++ {
		p := r.Page(i)
		if p.V.IsNull() {
			continue
		}
		t, err := p.GetPlainText(nil)
		if err != nil {
			return "", n, err
		}
		b.WriteString(t)
		b.WriteString("\n")
	}
	return b.String(), n, nil
}

var pool pdfium.Pool
var inst pdfium.Pdfium

func pdfiumText(path string) (string, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	doc, err := inst.OpenDocument(&requests.OpenDocument{File: &data})
	if err != nil {
		return "", 0, err
	}
	defer inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc.Document})
	pc, err := inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: doc.Document})
	if err != nil {
		return "", 0, err
	}
	var b strings.Builder
	for i := 0; i < pc.PageCount; i++ {
		t, err := inst.GetPageText(&requests.GetPageText{Page: requests.Page{ByIndex: &requests.PageByIndex{Document: doc.Document, Index: i}}})
		if err != nil {
			return "", pc.PageCount, err
		}
		b.WriteString(t.Text)
		b.WriteString("\n")
	}
	return b.String(), pc.PageCount, nil
}

func main() {
	engine := flag.String("engine", "ledongthuc", "pdfium or ledongthuc")
	flag.Parse()
	var files []string
	filepath.Walk(flag.Arg(0), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".pdf") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	if *engine == "pdfium" {
		t0 := time.Now()
		var err error
		pool, err = webassembly.Init(webassembly.Config{MinIdle: 1, MaxIdle: 1, MaxTotal: 1})
		if err != nil {
			panic(err)
		}
		inst, err = pool.GetInstance(time.Minute)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(os.Stderr, "pdfium init %v\n", time.Since(t0))
	}
	var refPages, pages, fails, below98 int
	var refTime, engTime time.Duration
	var recalls []float64
	for _, f := range files {
		t0 := time.Now()
		ref, err := exec.Command("pdftotext", "-enc", "UTF-8", f, "-").Output()
		refTime += time.Since(t0)
		if err != nil {
			continue
		}
		refPages += bytes.Count(ref, []byte("\f"))
		t0 = time.Now()
		var text string
		var n int
		if *engine == "pdfium" {
			text, n, err = pdfiumText(f)
		} else {
			text, n, err = ledong(f)
		}
		engTime += time.Since(t0)
		if err != nil {
			fails++
			fmt.Printf("FAIL %s: %.100v\n", f, err)
			recalls = append(recalls, 0)
			below98++
			continue
		}
		pages += n
		h, tot := recall(words(string(ref)), words(text))
		r := 1.0
		if tot > 0 {
			r = float64(h) / float64(tot)
		}
		recalls = append(recalls, r)
		if r < 0.98 {
			below98++
		}
	}
	sort.Float64s(recalls)
	sum := 0.0
	for _, r := range recalls {
		sum += r
	}
	fmt.Printf("engine=%s files=%d failed=%d below98=%d meanRecall=%.4f medianRecall=%.4f minRecall=%.4f\n",
		*engine, len(files), fails, below98, sum/float64(len(recalls)), recalls[len(recalls)/2], recalls[0])
	fmt.Printf("pdftotext: %d pages in %v = %.0f pages/s; %s: %d pages in %v = %.0f pages/s\n",
		refPages, refTime.Round(time.Millisecond), float64(refPages)/refTime.Seconds(), *engine, pages, engTime.Round(time.Millisecond), float64(pages)/engTime.Seconds())
}
