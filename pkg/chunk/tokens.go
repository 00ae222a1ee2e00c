package chunk

import (
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100kPattern is the pre-tokenisation pattern of cl100k_base, as in
// tiktoken-go (which only builds encodings through a process-wide loader
// that downloads the ranks by default).
const cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// cl100k returns the cl100k_base tokenizer, built once on first use from
// the ranks that github.com/pkoukk/tiktoken-go-loader embeds (about 1.7 MB
// in the binary, 100k ranks, some 10 MB of heap): offline, never fetched.
// Loading takes about 100 ms, so it waits until a split asks for tokens.
var cl100k = sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe("cl100k_base.tiktoken")
	if err != nil {
		return nil, err
	}
	special := map[string]int{
		tiktoken.ENDOFTEXT:   100257,
		tiktoken.FIM_PREFIX:  100258,
		tiktoken.FIM_MIDDLE:  100259,
		tiktoken.FIM_SUFFIX:  100260,
		tiktoken.ENDOFPROMPT: 100276,
	}
	bpe, err := tiktoken.NewCoreBPE(ranks, special, cl100kPattern)
	if err != nil {
		return nil, err
	}
	set := map[string]any{}
	for k := range special {
		set[k] = true
	}
	return tiktoken.NewTiktoken(bpe, &tiktoken.Encoding{
		Name: tiktoken.MODEL_CL100K_BASE, PatStr: cl100kPattern, MergeableRanks: ranks, SpecialTokens: special,
	}, set), nil
})

// CountTokens returns how many tokens of cl100k_base (see Tokens) s has.
func CountTokens(s string) (int, error) {
	enc, err := cl100k()
	if err != nil {
		return 0, err
	}
	return len(enc.EncodeOrdinary(s)), nil
}
