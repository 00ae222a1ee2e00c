package chunk

import (
	"container/heap"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100k returns the cl100k_base tokenizer, built once on first use from
// the ranks that github.com/pkoukk/tiktoken-go-loader embeds (about 1.7 MB
// in the binary, 100k ranks, some 10 MB of heap): offline, never fetched.
// Loading takes about 100 ms, so it waits until a split asks for tokens.
var cl100k = sync.OnceValues(func() (*tokenizer, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe("cl100k_base.tiktoken")
	if err != nil {
		return nil, err
	}
	return &tokenizer{ranks: ranks, seed: maphash.MakeSeed()}, nil
})

// CountTokens returns how many tokens of cl100k_base (see Tokens) s has,
// as tiktoken-go's EncodeOrdinary counts them: special tokens' text is
// ordinary text, and each byte of invalid UTF-8 counts as U+FFFD.
func CountTokens(s string) (int, error) {
	enc, err := cl100k()
	if err != nil {
		return 0, err
	}
	return enc.count(s), nil
}

// tokenizer counts tokens the way tiktoken does: it cuts text into pieces
// by the cl100k_base pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// (hand-written in pieceEnd: tiktoken-go's backtracking regexp engine was
// most of the cost of token sizing) and byte-pair merges each piece with the
// ranks. Pieces are mostly words, which text repeats, so the counts of the
// pieces that take more than one token are cached. It is safe for
// concurrent use.
type tokenizer struct {
	ranks map[string]int
	seed  maphash.Seed
	cache [cacheSlots]atomic.Pointer[cached]
}

// The cache is direct-mapped: a piece's slot is given by its hash, and a
// new piece replaces the one there. It holds pieces of up to
// cacheMaxPiece bytes, so at most about 1.5 MB. Splits count a text more
// than once (a block, then its sentences, then the chunks), and with 8192
// slots the hit rate on books and manuals is within 1.5 points of an
// unbounded map's.
const (
	cacheSlots    = 1 << 13
	cacheMaxPiece = 128
)

type cached struct {
	piece string
	n     int
}

func (t *tokenizer) count(s string) int {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // as tiktoken-go reads it: each invalid byte a U+FFFD
	}
	n := 0
	for i := 0; i < len(s); {
		j := pieceEnd(s, i)
		n += t.pieceTokens(s[i:j])
		i = j
	}
	return n
}

func (t *tokenizer) pieceTokens(p string) int {
	if len(p) == 1 {
		return 1 // every byte is a token
	}
	if _, ok := t.ranks[p]; ok {
		return 1
	}
	if len(p) > cacheMaxPiece {
		return t.merge(p)
	}
	slot := &t.cache[maphash.String(t.seed, p)%cacheSlots]
	if c := slot.Load(); c != nil && c.piece == p {
		return c.n
	}
	n := t.merge(p)
	slot.Store(&cached{piece: strings.Clone(p), n: n}) // a copy: p may pin a page's text
	return n
}

// merge returns the number of tokens byte-pair merging makes of p: it
// merges the adjacent pair of lowest rank, the leftmost of equals, while
// any pair has a rank, as tiktoken's byte_pair_merge does.
func (t *tokenizer) merge(p string) int {
	if len(p) > mergeShortMax {
		return t.mergeLong(p)
	}
	return t.mergeShort(p)
}

// mergeShortMax is the longest piece that mergeShort merges: past about
// 1 kB its quadratic scan costs more than mergeLong's heap (64 kB of
// letters: 6 s against 0.1 s).
const mergeShortMax = 1024

// mergeShort is merge by tiktoken's algorithm: it scans all pairs for the
// next to merge, which is quick for pieces of a few bytes, as most are, but
// takes time quadratic in the length.
func (t *tokenizer) mergeShort(p string) int {
	type part struct {
		start int
		rank  int // of this part merged with the next
	}
	var buf [64]part
	parts := buf[:0]
	for i := range len(p) + 1 {
		parts = append(parts, part{i, math.MaxInt})
	}
	rank := func(i int) int {
		if i+2 < len(parts) {
			if r, ok := t.ranks[p[parts[i].start:parts[i+2].start]]; ok {
				return r
			}
		}
		return math.MaxInt
	}
	for i := range parts {
		parts[i].rank = rank(i)
	}
	for {
		low, at := math.MaxInt, -1
		for i, pt := range parts {
			if pt.rank < low {
				low, at = pt.rank, i
			}
		}
		if at < 0 {
			return len(parts) - 1
		}
		parts = append(parts[:at+1], parts[at+2:]...)
		parts[at].rank = rank(at)
		if at > 0 {
			parts[at-1].rank = rank(at - 1)
		}
	}
}

// mergeLong is merge in O(n log n) for a piece of n bytes: the pairs wait
// in a heap, in the order merge takes them, and a merge queues the two
// pairs it makes.
func (t *tokenizer) mergeLong(p string) int {
	n := len(p)
	// The parts are linked lists over their start offsets: next[i] is where
	// the part after the one at i starts (n after the last), -1 once the part
	// at i is merged into the one before.
	next, prev := make([]int, n), make([]int, n)
	for i := range n {
		next[i], prev[i] = i+1, i-1
	}
	pairEnd := func(i int) int {
		if j := next[i]; j < n {
			return next[j]
		}
		return -1
	}
	pairs := &pairHeap{}
	queue := func(i int) {
		if i < 0 {
			return
		}
		if end := pairEnd(i); end > 0 {
			if r, ok := t.ranks[p[i:end]]; ok {
				heap.Push(pairs, pair{rank: r, start: i, end: end})
			}
		}
	}
	for i := range n - 1 {
		queue(i)
	}
	parts := n
	for pairs.Len() > 0 {
		pr := heap.Pop(pairs).(pair)
		if next[pr.start] < 0 || pairEnd(pr.start) != pr.end {
			continue // one of its parts has merged since
		}
		j := next[pr.start]
		next[pr.start] = next[j]
		if next[j] < n {
			prev[next[j]] = pr.start
		}
		next[j] = -1
		parts--
		queue(pr.start)
		queue(prev[pr.start])
	}
	return parts
}

// pair is two adjacent parts, p[start:end], of rank rank.
type pair struct{ rank, start, end int }

// pairHeap orders pairs by rank, then start (a container/heap.Interface).
type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].start < h[j].start
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Character classes of the pattern: \p{L}, \p{N}, \s without \r and \n,
// \r and \n, and everything else.
const (
	other = iota
	letter
	number
	space
	newline
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		c[r] = classOf(r)
	}
	return c
}()

func classOf(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return newline
	case unicode.IsLetter(r):
		return letter
	case unicode.IsNumber(r):
		return number
	case unicode.IsSpace(r):
		return space
	}
	return other
}

// runeAt returns the rune at s[i], its class and its width. s is valid UTF-8.
func runeAt(s string, i int) (rune, uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return rune(b), asciiClass[b], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, classOf(r), w
}

// skip returns where the run of class c from s[i] ends.
func skip(s string, i int, c uint8) int {
	for i < len(s) {
		_, ci, w := runeAt(s, i)
		if ci != c {
			break
		}
		i += w
	}
	return i
}

// pieceEnd returns where the piece of s that starts at i ends: the first
// alternative of the pattern (see tokenizer) that matches there, and of its
// matches the one the regexp engine's backtracking finds first.
func pieceEnd(s string, i int) int {
	r, c, w := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s[i+1:]); n > 0 {
			return i + 1 + n
		}
	}
	switch c {
	case letter: // \p{L}+
		return skip(s, i+w, letter)
	case number: // \p{N}{1,3}
		j := i + w
		for range 2 {
			if j == len(s) {
				break
			}
			_, cj, wj := runeAt(s, j)
			if cj != number {
				break
			}
			j += wj
		}
		return j
	case space, other:
		if i+w < len(s) {
			_, next, wn := runeAt(s, i+w)
			switch {
			case next == letter: // [^\r\n\p{L}\p{N}]\p{L}+
				return skip(s, i+w+wn, letter)
			case c == other || r == ' ' && next == other: // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
				j := skip(s, i+w, other)
				for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
					j++
				}
				return j
			}
		} else if c == other {
			return i + w
		}
	}
	// White space: up to its last \r or \n (\s*[\r\n]+); else all of it at
	// the end of s, or all but its last character before other text
	// (\s+(?!\S)), or its one character (\s+).
	j, last, afterNewline := i, i, -1
	for j < len(s) {
		_, cj, wj := runeAt(s, j)
		if cj != space && cj != newline {
			break
		}
		if cj == newline {
			afterNewline = j + wj
		}
		last = j
		j += wj
	}
	switch {
	case afterNewline >= 0:
		return afterNewline
	case j == len(s) || last == i:
		return j
	}
	return last
}

// contraction returns the length of the letters of a contraction ('s, 't,
// 're, 've, 'm, 'll, 'd in any case) at the start of s, after the
// apostrophe, or 0. Case is folded as the regexp engine does, by
// unicode.ToLower.
func contraction(s string) int {
	if s == "" {
		return 0
	}
	r, _, w := runeAt(s, 0)
	var second rune
	switch unicode.ToLower(r) {
	case 's', 't', 'm', 'd':
		return w
	case 'r', 'v':
		second = 'e'
	case 'l':
		second = 'l'
	default:
		return 0
	}
	if w == len(s) {
		return 0
	}
	r2, _, w2 := runeAt(s, w)
	if unicode.ToLower(r2) != second {
		return 0
	}
	return w + w2
}
