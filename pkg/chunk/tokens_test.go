package chunk

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100kPattern is the pre-tokenisation pattern of cl100k_base, as in
// tiktoken-go, which pieceEnd implements by hand.
const cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// tiktokenCL100k is tiktoken-go's own cl100k_base encoder, the reference
// for the counter (and what it replaced, for the benchmarks).
var tiktokenCL100k = sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe("cl100k_base.tiktoken")
	if err != nil {
		return nil, err
	}
	bpe, err := tiktoken.NewCoreBPE(ranks, map[string]int{}, cl100kPattern)
	if err != nil {
		return nil, err
	}
	return tiktoken.NewTiktoken(bpe, &tiktoken.Encoding{
		Name: tiktoken.MODEL_CL100K_BASE, PatStr: cl100kPattern, MergeableRanks: ranks,
	}, map[string]any{}), nil
})

func tiktokenCount(tb testing.TB) func(string) int {
	tb.Helper()
	enc, err := tiktokenCL100k()
	if err != nil {
		tb.Fatal(err)
	}
	return func(s string) int { return len(enc.EncodeOrdinary(s)) }
}

// trickyTexts are strings at the edges of the pattern's alternatives.
var trickyTexts = []string{
	"", " ", "  ", "\n", "\r\n", "\r\n\r\n", " \n ", "a\n\n\nb", "a \r\n \r\n  b", "a  \n\t b",
	"it's", "IT'S", "It'S", "'S", "'s", "'", "''", "'''s", "'sorry", "they're", "THEY'RE", "they'Re", "we'rE",
	"I've", "I'VE", "I'm", "I'M", "you'll", "YOU'LL", "you'Ll", "you'lL", "he'd", "HE'D", "'re", "'r", "'l", "'ll",
	"x'ſ", "x'K", "'İ", "'\u212a", // long s, Kelvin sign: case folding by unicode.ToLower
	"1", "12", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "٠١٢٣٤٥٦٧", "１２３４", "²³¹", "Ⅻⅻ", "½¼",
	"a1b2c3", "abc123def", " 123", "  123", "x 1", "$100", " $100", "—1",
	"Größe über Straße", "Привет, мир!", "Ελληνικά", "مرحبا بالعالم", "שלום", "नमस्ते दुनिया", "สวัสดีครับ",
	"中文字符测试", "日本語のテキスト", "한국어 텍스트", "mixed中文and English", "漢字123かな", "ｶﾀｶﾅ",
	"👍", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪🇫🇷", "❤️", "😀😀😀", " 😀", "a😀b", "😀\n",
	"e\u0301", "a\u0300\u0301\u0302", " \u0301", "\u0301\u0301x", "n\u0303o", "x\u200dy", "\u200b", "\ufeffBOM",
	"trailing   ", "trailing \t", "trailing\n", "trailing \n  ", "  leading", "\t\tindented", "a\tb", "a\t\tb",
	"words  with   runs    of     spaces", "space before .", "space  before  !", " !!!\n\n", "...\r\n", "?!\n\rx",
	"\u00a0nbsp", "a\u00a0\u00a0b", "ideo\u3000graphic", "\u3000\u3000x", "\u2028\u2029", "\u0085next", "\v\f",
	"\x00", "a\x00b", "\x00\x00\x00", "\x7f", "<|endoftext|>", "<|fim_prefix|>x",
	"\xff", "a\xffb", "\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff\xfe\xfd", "é\xff'S",
	"https://example.com/a/b?c=1&d=two#frag", "user@example.com", "C:\\Program Files\\x", "{\"k\": [1, 2]}",
	"func main() {\n\tfmt.Println(\"hi\")\n}\n", "if (a <= b && c != d) { return -1; }",
	strings.Repeat("a", 300), strings.Repeat("ab", 200), strings.Repeat("=", 120), strings.Repeat(" ", 100) + "x",
	strings.Repeat("\n", 50), strings.Repeat("9", 100), strings.Repeat("😀", 40), strings.Repeat("漢", 70),
	// Longer than mergeShortMax.
	strings.Repeat("abcdefghijklmnopqrstuvwxyz", 50), strings.Repeat("ACGTTGCA", 150), strings.Repeat(" ", 1100) + "x",
	strings.Repeat("-", 1200), strings.Repeat("Straße", 200),
}

// testTexts returns the tricky strings, the fuzz corpora's strings, and
// testdata/tokens.txt whole and by line and paragraph.
func testTexts(t *testing.T) []string {
	t.Helper()
	texts := append([]string(nil), trickyTexts...)
	corpus, err := filepath.Glob("testdata/fuzz/*/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range corpus {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if quoted, ok := strings.CutPrefix(line, "string("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				texts = append(texts, s)
			}
		}
	}
	b, err := os.ReadFile("testdata/tokens.txt")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	texts = append(texts, doc)
	texts = append(texts, strings.SplitAfter(doc, "\n")...)
	texts = append(texts, strings.Split(doc, "\n\n")...)
	for _, p := range benchPages(5) {
		texts = append(texts, p.Text)
	}
	return texts
}

func TestTokenCount(t *testing.T) {
	t.Parallel()
	enc, err := cl100k()
	if err != nil {
		t.Fatal(err)
	}
	// Reference values from OpenAI's tiktoken (cl100k_base).
	for text, want := range map[string]int{
		"hello world":                     2,
		"Hello world. Hello again world.": 7,
		"tiktoken is great!":              6,
	} {
		if got := enc.count(text); got != want {
			t.Errorf("count(%q) = %d; want %d", text, got, want)
		}
	}
	ref := tiktokenCount(t)
	for _, text := range testTexts(t) {
		// Twice: the second count comes from the cache.
		for range 2 {
			if got, want := enc.count(text), ref(text); got != want {
				t.Errorf("count(%q) = %d; tiktoken-go counts %d", text, got, want)
				break
			}
		}
	}
}

// The two ways to merge agree on every piece, whatever its length.
func TestMergeShortLong(t *testing.T) {
	t.Parallel()
	enc, err := cl100k()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range testTexts(t) {
		checkMerges(t, enc, text)
	}
}

func checkMerges(t *testing.T, enc *tokenizer, s string) {
	t.Helper()
	s = string([]rune(s))
	for i := 0; i < len(s); {
		j := pieceEnd(s, i)
		if short, long := enc.mergeShort(s[i:j]), enc.mergeLong(s[i:j]); short != long {
			t.Errorf("piece %q: mergeShort %d, mergeLong %d", s[i:j], short, long)
		}
		i = j
	}
}

// Counts made at once share the cache and come out the same.
func TestTokenCountConcurrent(t *testing.T) {
	t.Parallel()
	enc, err := cl100k()
	if err != nil {
		t.Fatal(err)
	}
	texts := testTexts(t)
	want := make([]int, len(texts))
	ref := tiktokenCount(t)
	for i, text := range texts {
		want[i] = ref(text)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range texts {
				i := (k + g*len(texts)/4) % len(texts)
				if got := enc.count(texts[i]); got != want[i] {
					t.Errorf("count(%q) = %d; tiktoken-go counts %d", texts[i], got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// Code points, in the places where the pattern tells character classes
// apart, are counted as tiktoken-go counts them: those of one and two bytes
// in UTF-8, the white space, and every 211th of the others, or with
// RAGPIPE_TOKENS_EVERY_RUNE=1 every one (a minute or two).
func TestTokenCountRunes(t *testing.T) {
	t.Parallel()
	stride := rune(211)
	if os.Getenv("RAGPIPE_TOKENS_EVERY_RUNE") != "" {
		stride = 1
	}
	enc, err := cl100k()
	if err != nil {
		t.Fatal(err)
	}
	ref := tiktokenCount(t)
	var b strings.Builder
	var runes []rune
	check := func() {
		if got, want := enc.count(b.String()), ref(b.String()); got != want {
			// Find the code point to blame.
			for _, r := range runes {
				s := context(r)
				if got, want := enc.count(s), ref(s); got != want {
					t.Errorf("count(%q) = %d; tiktoken-go counts %d", s, got, want)
					return
				}
			}
			t.Errorf("count of the block from %U = %d; tiktoken-go counts %d", runes[0], got, want)
		}
		b.Reset()
		runes = runes[:0]
	}
	for r := range rune(utf8.MaxRune + 1) {
		if !utf8.ValidRune(r) || r >= 0x800 && r%stride != 0 && !unicode.IsSpace(r) {
			continue
		}
		b.WriteString(context(r))
		runes = append(runes, r)
		if len(runes) == 512 {
			check()
		}
	}
	check()
}

// context puts r after an apostrophe, a letter, a digit, a space and a
// newline, and before a letter, a digit, punctuation and spaces.
func context(r rune) string {
	s := string(r)
	return "'" + s + "a" + s + "1" + s + s + " " + s + "!" + s + "\n" + s + "  " + s + "\n"
}

func FuzzTokenCount(f *testing.F) {
	for _, s := range trickyTexts {
		f.Add(s)
	}
	enc, err := cl100k()
	if err != nil {
		f.Fatal(err)
	}
	ref := tiktokenCount(f)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := enc.count(s), ref(s); got != want {
			t.Errorf("count(%q) = %d; tiktoken-go counts %d", s, got, want)
		}
		checkMerges(t, enc, s)
	})
}

// BenchmarkTokenCount counts the tokens of a document's pages (see
// benchDocument) with tiktoken-go, as before, and with the counter with and
// without its cache.
func BenchmarkTokenCount(b *testing.B) {
	var text strings.Builder
	for _, p := range benchDocument(b) {
		text.WriteString(p.Text)
		text.WriteString("\n\n")
	}
	s := text.String()
	enc, err := cl100k()
	if err != nil {
		b.Fatal(err)
	}
	uncached := func(s string) int {
		n := 0
		for i := 0; i < len(s); {
			j := pieceEnd(s, i)
			if _, ok := enc.ranks[s[i:j]]; ok {
				n++
			} else {
				n += enc.merge(s[i:j])
			}
			i = j
		}
		return n
	}
	for _, bc := range []struct {
		name  string
		count func(string) int
	}{
		{"tiktoken-go", tiktokenCount(b)},
		{"uncached", uncached},
		{"cached", enc.count},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				bc.count(s)
			}
		})
	}
}
