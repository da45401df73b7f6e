#include "tokenize.h"

#include "common.h"

#include <algorithm>
#include <stdexcept>
#include <string_view>

// llama.cpp splits text at special tokens (tokenizer_st_partition) in a forward_list and, for every
// match, walks the list from its head to the match (std::distance, std::next): time quadratic in the
// number of special tokens. A chat template writes two or three per message, so 16,000 one-word
// messages held the JS thread 5 s and 200,000 over 6 minutes (issue 13, finding 3). Here the text is
// cut into pieces at special tokens first, every kSpecialsPerPiece of them, and each piece goes to
// llama_tokenize alone: the same tokens, since llama.cpp never merges across a special token, in
// time linear in the text. Measured with the demo model (Qwen2's tokenizer) on 2 shared cores,
// 2026-12-01: ChatML text of 16,000 messages (512 KB, 32,000 special tokens) 7.6 s before, 0.28 s
// after; of 64,000 messages 1.3 s after.
static constexpr size_t kSpecialsPerPiece = 64;

std::vector<SpecialToken> CollectSpecialTokens(const llama_vocab * vocab) {
    std::vector<SpecialToken> specials;
    const int32_t n = llama_vocab_n_tokens(vocab);
    const int special_attrs = LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN;
    for (llama_token id = 0; id < n; id++) {
        const llama_token_attr attr = llama_vocab_get_attr(vocab, id);
        const char * text = llama_vocab_get_text(vocab, id);
        if ((attr & special_attrs) != 0 && text != nullptr && text[0] != '\0') specials.push_back({id, text, attr});
    }
    return specials;
}

static std::vector<llama_token> TokenizeWhole(const llama_vocab * vocab, std::string_view text, bool add_special,
                                              bool parse_special) {
    std::vector<llama_token> tokens(text.size() + 8);
    int32_t n = FillGrowing(tokens, [&](std::vector<llama_token> & out) {
        return llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                              static_cast<int32_t>(out.size()), add_special, parse_special);
    });
    if (n < 0) throw std::runtime_error("tokenization failed");
    tokens.resize(n);
    return tokens;
}

struct Occurrence {
    size_t start;
    size_t end;
    const SpecialToken * token;
};

// Every place a special token's text occurs, overlapping ones included, in order of start.
static std::vector<Occurrence> FindSpecials(const std::vector<SpecialToken> & specials, std::string_view text,
                                            bool parse_special) {
    std::vector<Occurrence> found;
    for (const SpecialToken & special : specials) {
        // As llama.cpp: without parse_special, control and unknown tokens are plain text.
        if (!parse_special && (special.attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN))) continue;
        for (size_t at = text.find(special.text); at != std::string_view::npos; at = text.find(special.text, at + 1)) {
            found.push_back({at, at + special.text.size(), &special});
        }
    }
    std::sort(found.begin(), found.end(), [](const Occurrence & a, const Occurrence & b) { return a.start < b.start; });
    return found;
}

// Where the text can be cut without changing its tokens: right after a special token that no other
// occurrence overlaps (so llama.cpp matches it whatever its order of search) and that does not strip
// the whitespace after it (RSTRIP would reach into the next piece). One cut per kSpecialsPerPiece.
static std::vector<size_t> CutPoints(const std::vector<Occurrence> & found) {
    std::vector<size_t> cuts;
    size_t since_cut = 0;
    size_t previous_end = 0;
    for (size_t i = 0; i < found.size(); i++) {
        const Occurrence & o = found[i];
        const bool alone = previous_end <= o.start && (i + 1 == found.size() || found[i + 1].start >= o.end);
        previous_end = std::max(previous_end, o.end);
        if (++since_cut < kSpecialsPerPiece || !alone || (o.token->attr & LLAMA_TOKEN_ATTR_RSTRIP)) continue;
        cuts.push_back(o.end);
        since_cut = 0;
    }
    return cuts;
}

std::vector<llama_token> TokenizeText(const llama_vocab * vocab, const std::vector<SpecialToken> & specials,
                                      const std::string & text, bool add_special, bool parse_special) {
    // SPM and BPE only add BOS before and EOS after, and start every piece after a special token
    // as they would have mid-text; other tokenizers keep llama.cpp's own path.
    const enum llama_vocab_type type = llama_vocab_type(vocab);
    const std::vector<size_t> cuts = type == LLAMA_VOCAB_TYPE_SPM || type == LLAMA_VOCAB_TYPE_BPE
        ? CutPoints(FindSpecials(specials, text, parse_special))
        : std::vector<size_t>{};
    if (cuts.empty()) return TokenizeWhole(vocab, text, add_special, parse_special);
    std::vector<llama_token> tokens;
    if (add_special && llama_vocab_get_add_bos(vocab)) tokens.push_back(llama_vocab_bos(vocab));
    size_t from = 0;
    for (size_t i = 0; i <= cuts.size(); i++) {
        const size_t to = i < cuts.size() ? cuts[i] : text.size();
        if (to > from) {
            const std::vector<llama_token> piece = TokenizeWhole(vocab, std::string_view(text).substr(from, to - from), false, parse_special);
            tokens.insert(tokens.end(), piece.begin(), piece.end());
        }
        from = to;
    }
    if (add_special && llama_vocab_get_add_eos(vocab)) tokens.push_back(llama_vocab_eos(vocab));
    return tokens;
}
