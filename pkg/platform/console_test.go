package platform_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowser drives the web console in headless Chromium (make
// test installs Debian's chromium) against the real stack: sign in, upload a
// real PDF and watch it reach ready, search, ask with the answer streaming
// in, and open a citation's chunk; then the API docs render the spec. Each
// step's screenshot goes to
// .data/screenshots/ (git-ignored); a failing step's too.
func TestConsoleInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: make test (scripts/services.sh) installs Debian's chromium")
	}
	s := startStack(t, nil)
	key := s.Key(t, "acme")
	pdf, err := filepath.Abs("../../testdata/lppl.pdf")
	if err != nil {
		t.Fatal(err)
	}
	shots, err := filepath.Abs("../../.data/screenshots")
	if err != nil || os.MkdirAll(shots, 0o755) != nil {
		t.Fatalf("screenshots folder: %v", err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1600),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-component-update", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	n := 0
	step := func(name string, do func() error) {
		t.Helper()
		n++
		err := do()
		if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
			_ = os.WriteFile(filepath.Join(shots, fmt.Sprintf("console-%d-%s.png", n, strings.ReplaceAll(name, " ", "-"))), png, 0o644)
		}
		if err != nil {
			t.Fatalf("step %d, %s: %v (screenshot in %s)", n, name, err, shots)
		}
	}
	poll := func(expr string) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second)))
		return err
	}
	text := func(sel string, dst *string) error {
		var err error
		*dst, err = chromedp.Run(ctx, chromedp.Text(sel))
		return err
	}

	var stored, cookies, href string
	step("sign in", func() error {
		err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/console"), chromedp.WaitVisible("#signin-form"),
			chromedp.SendKeys("#key", key), chromedp.Click("#signin-form button"), chromedp.WaitVisible("#app"))
		if err == nil {
			stored, err = chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("ragpipe.key")`))
		}
		if err == nil {
			cookies, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
		}
		if err == nil {
			href, err = chromedp.Run(ctx, chromedp.Location())
		}
		return err
	})
	if stored != key || cookies != "" || strings.Contains(href, key) {
		t.Errorf("the key is in session storage %v, cookies %q, URL %q", stored == key, cookies, href)
	}

	var row string
	step("upload to ready", func() error {
		if err := chromedp.Do(ctx, chromedp.SetUploadFiles("#file-input", []string{pdf})); err != nil {
			return err
		}
		if err := poll(`document.querySelectorAll("#uploads .status-ready").length === 1`); err != nil {
			return err
		}
		if err := poll(`document.querySelector("#doc-table tbody td.status-ready") !== null`); err != nil {
			return err
		}
		return text("#doc-table tbody tr", &row)
	})
	if !strings.Contains(row, "lppl.pdf") || !strings.Contains(row, "ready") || !strings.Contains(row, "8") {
		t.Errorf("documents row %q", row)
	}

	var results string
	step("search", func() error {
		if err := chromedp.Do(ctx, chromedp.SendKeys("#query", "restrictions on aggregating works"),
			chromedp.Click("#search-form button"), chromedp.WaitVisible("#results li")); err != nil {
			return err
		}
		return text("#results li", &results)
	})
	if !strings.Contains(results, "pages 4") {
		t.Errorf("first search result %q; want page 4's passage", results)
	}

	var ans, citation string
	step("ask", func() error {
		if err := chromedp.Do(ctx, chromedp.SendKeys("#question", "Does the license place restrictions on aggregating other works with the Work?"),
			chromedp.Click("#ask-form button")); err != nil {
			return err
		}
		if err := poll(`document.querySelector("#answer").dataset.done === "true"`); err != nil {
			return err
		}
		if err := text("#answer", &ans); err != nil {
			return err
		}
		return text("#citations li", &citation)
	})
	if !strings.HasPrefix(ans, page4Sentence+" [1]") || !strings.Contains(citation, "[1] pages 4") {
		t.Errorf("answer %q, first citation %q", ans, citation)
	}

	var chunk string
	step("open citation", func() error {
		if err := chromedp.Do(ctx, chromedp.Click("#citations a.citation"), chromedp.WaitVisible("#chunks li.chunk-open")); err != nil {
			return err
		}
		return text("#chunks li.chunk-open", &chunk)
	})
	if !strings.Contains(strings.Join(strings.Fields(chunk), " "), "aggregating such works") || !strings.Contains(chunk, "pages 4") {
		t.Errorf("opened chunk %q", chunk)
	}
	step("API docs", func() error {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/docs")); err != nil {
			return err
		}
		// RapiDoc renders the spec it fetched from /openapi.yaml in its shadow DOM.
		return poll(`(document.querySelector("rapi-doc")?.shadowRoot?.textContent || "").includes("Answer a question with citations")`)
	})
	t.Logf("screenshots in %s", shots)
}
