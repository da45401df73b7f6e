#include "sampler.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

SequenceSampler::SequenceSampler(const llama_vocab * vocab, const SamplerParams & params)
    : params_(params), n_vocab_(llama_vocab_n_tokens(vocab)) {
    if (params.min_tokens > 0) {
        for (llama_token id = 0; id < n_vocab_; id++) {
            if (llama_vocab_is_eog(vocab, id)) eog_tokens_.push_back(id);
        }
    }
    if (!params.grammar.empty()) InitGrammar(vocab);
    const bool penalties = params.repeat_last_n != 0 &&
        (params.repeat_penalty != 1.0f || params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f);
    // Plain greedy needs no chain at all: argmax over the raw logits, as llama.cpp does at temp <= 0.
    greedy_only_ = params.temperature <= 0.0f && !penalties && params.logit_bias.empty();

    adjust_ = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (!params.logit_bias.empty()) {
        llama_sampler_chain_add(adjust_, llama_sampler_init_logit_bias(
            n_vocab_, static_cast<int32_t>(params.logit_bias.size()), params.logit_bias.data()));
    }
    if (penalties) {
        const int32_t last_n = params.repeat_last_n < 0 ? 1 << 30 : params.repeat_last_n;
        llama_sampler_chain_add(adjust_, llama_sampler_init_penalties(
            n_vocab_, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty));
    }
    pick_ = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (params.temperature <= 0.0f) {
        llama_sampler_chain_add(pick_, llama_sampler_init_greedy());
        return;
    }
    // Same order as llama.cpp's common sampler: truncations first, temperature, then the draw.
    if (params.top_k > 0) llama_sampler_chain_add(pick_, llama_sampler_init_top_k(params.top_k));
    if (params.typical_p < 1.0f) llama_sampler_chain_add(pick_, llama_sampler_init_typical(params.typical_p, 1));
    if (params.top_p < 1.0f) llama_sampler_chain_add(pick_, llama_sampler_init_top_p(params.top_p, 1));
    if (params.min_p > 0.0f) llama_sampler_chain_add(pick_, llama_sampler_init_min_p(params.min_p, 1));
    llama_sampler_chain_add(pick_, llama_sampler_init_temp(params.temperature));
    llama_sampler_chain_add(pick_, llama_sampler_init_dist(params.seed));
}

// The tokens of `text` as the prompt's tokenizer wrote them (special tokens parsed), less a lone
// space some tokenizers add before a first special token. llama.cpp's common sampler drops a
// first token whose piece merely starts with a space, which with SentencePiece's space prefix
// ("Once" is "▁Once") dropped a whole word; here only a token that is nothing but whitespace goes.
static std::vector<llama_token> PrefixTokens(const llama_vocab * vocab, const std::string & text) {
    const int32_t n = -llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), nullptr, 0, false, true);
    std::vector<llama_token> tokens(std::max(n, 0));
    llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(), n, false, true);
    if (!tokens.empty() && !std::isspace(static_cast<unsigned char>(text[0]))) {
        char piece[64];
        const int32_t len = llama_token_to_piece(vocab, tokens[0], piece, sizeof piece, 0, true);
        const bool blank = len > 0 && std::all_of(piece, piece + len, [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
        if (blank) tokens.erase(tokens.begin());
    }
    return tokens;
}

void SequenceSampler::InitGrammar(const llama_vocab * vocab) {
    const SamplerParams & p = params_;
    const bool lazy = !p.grammar_trigger_patterns.empty() || !p.grammar_trigger_tokens.empty();
    if (lazy) {
        std::vector<const char *> patterns;
        for (const auto & pattern : p.grammar_trigger_patterns) patterns.push_back(pattern.c_str());
        try {
            grammar_ = llama_sampler_init_grammar_lazy_patterns(vocab, p.grammar.c_str(), "root", patterns.data(), patterns.size(),
                                                                p.grammar_trigger_tokens.data(), p.grammar_trigger_tokens.size());
        } catch (const std::exception & e) {  // std::regex_error from a trigger pattern
            throw std::invalid_argument(std::string("invalid grammar trigger pattern: ") + e.what());
        }
    } else {
        grammar_ = llama_sampler_init_grammar(vocab, p.grammar.c_str(), "root");
    }
    if (grammar_ == nullptr) throw std::invalid_argument("invalid grammar");
    if (lazy || p.grammar_prefix.empty()) return;
    try {
        for (llama_token token : PrefixTokens(vocab, p.grammar_prefix)) llama_sampler_accept(grammar_, token);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("the grammar refuses its prefix: ") + e.what());
    }
}

// A lazy grammar is fed from where its trigger matched; when the token that completed the
// trigger carries text the grammar refuses (a model that wrote the trigger and wandered off in
// the same token), llama.cpp throws and the grammar has no state left: decoding goes on free and
// the answer's parser reads that text as content.
void SequenceSampler::AcceptGrammar(llama_token token) {
    try {
        llama_sampler_accept(grammar_, token);
    } catch (const std::exception &) {
        llama_sampler_free(grammar_);
        grammar_ = nullptr;
    }
}

SequenceSampler::~SequenceSampler() {
    if (adjust_) llama_sampler_free(adjust_);
    if (pick_) llama_sampler_free(pick_);
    if (grammar_) llama_sampler_free(grammar_);
}

void SequenceSampler::FillCandidates(const float * logits) {
    candidates_.resize(n_vocab_);
    for (llama_token id = 0; id < n_vocab_; id++) {
        candidates_[id] = llama_token_data{id, logits[id], 0.0f};
    }
    if (SuppressingEog()) {
        for (llama_token id : eog_tokens_) candidates_[id].logit = -std::numeric_limits<float>::infinity();
    }
}

static llama_token Argmax(const float * logits, int32_t n) {
    return static_cast<llama_token>(std::max_element(logits, logits + n) - logits);
}

llama_token SequenceSampler::Pick(llama_token_data_array * cur) {
    llama_sampler_apply(adjust_, cur);
    llama_sampler_apply(pick_, cur);
    return cur->data[cur->selected].id;
}

// How many allowed tokens the pick chain needs to choose exactly as it would from the whole
// grammar-masked vocabulary: the best one when greedy, the top k with top_k, else all of them.
size_t SequenceSampler::AllowedNeeded() const {
    if (params_.temperature <= 0.0f) return 1;
    if (params_.top_k > 0) return static_cast<size_t>(params_.top_k);
    return static_cast<size_t>(n_vocab_);
}

// The grammar rejected the unconstrained choice. Masking the whole vocabulary costs (vocabulary x
// grammar stacks): with Qwen2's 151,936 tokens and a 1,000-value enum (1,000 stacks) that was
// 0.6 s a token, and the whole step, every sequence's, waited for it. Instead the candidates are
// checked in blocks, highest adjusted logit first, until the block boundary proves the pick
// chain has all it needs (AllowedNeeded); the chain then picks from that prefix, masked. That
// can still be the whole vocabulary (a sampled pick whose top_k exceeds what the grammar allows
// here), so in a shared step the search is deferred (Sample's `defer`) and runs on its own worker.
llama_token SequenceSampler::PickAllowed(const float * logits, bool cancellable) {
    static constexpr size_t kBlock = 512;
    FillCandidates(logits);
    llama_token_data_array cur{candidates_.data(), candidates_.size(), -1, false};
    llama_sampler_apply(adjust_, &cur);
    auto by_logit = [](const llama_token_data & a, const llama_token_data & b) { return a.logit > b.logit; };
    const size_t needed = AllowedNeeded();
    size_t scanned = 0, allowed = 0;
    while (scanned < cur.size && allowed < needed) {
        if (cancellable && cancelled_) return LLAMA_TOKEN_NULL;
        const size_t end = std::min(cur.size, scanned + kBlock);
        if (end < cur.size) std::nth_element(cur.data + scanned, cur.data + end, cur.data + cur.size, by_logit);
        llama_token_data_array block{cur.data + scanned, end - scanned, -1, false};
        llama_sampler_apply(grammar_, &block);
        for (size_t i = scanned; i < end; i++) allowed += !std::isinf(cur.data[i].logit);
        scanned = end;
    }
    llama_token_data_array prefix{cur.data, scanned, -1, false};
    llama_sampler_apply(pick_, &prefix);
    return prefix.data[prefix.selected].id;
}

SampledToken SequenceSampler::Sample(const float * logits, int32_t * top_ids, float * top_lps, bool defer) {
    llama_token token;
    if (greedy_only_ && grammar_ == nullptr && !SuppressingEog()) {
        token = Argmax(logits, n_vocab_);
    } else {
        FillCandidates(logits);
        llama_token_data_array cur{candidates_.data(), candidates_.size(), -1, false};
        token = Pick(&cur);
        if (grammar_ != nullptr) {
            // Checking one token against the grammar is cheap; look further only when the
            // unconstrained choice is rejected (as llama.cpp's common sampler does).
            llama_token_data single{token, 1.0f, 0.0f};
            llama_token_data_array one{&single, 1, -1, false};
            llama_sampler_apply(grammar_, &one);
            if (std::isinf(single.logit) && single.logit < 0) {
                if (defer) {
                    deferred_logits_.assign(logits, logits + n_vocab_);
                    cancelled_ = false;
                    awaiting_pick_ = true;
                    return {LLAMA_TOKEN_NULL, std::numeric_limits<float>::quiet_NaN()};
                }
                token = PickAllowed(logits, false);
            }
        }
    }
    return Finish(token, logits, top_ids, top_lps);
}

SampledToken SequenceSampler::PickDeferred(int32_t * top_ids, float * top_lps) {
    const llama_token token = PickAllowed(deferred_logits_.data(), true);
    awaiting_pick_ = false;
    if (token == LLAMA_TOKEN_NULL) return {token, std::numeric_limits<float>::quiet_NaN()};
    return Finish(token, deferred_logits_.data(), top_ids, top_lps);
}

SampledToken SequenceSampler::Finish(llama_token token, const float * logits, int32_t * top_ids, float * top_lps) {
    if (grammar_ != nullptr) AcceptGrammar(token);
    if (!greedy_only_) AcceptChains(token);
    generated_++;
    SampledToken out{token, std::numeric_limits<float>::quiet_NaN()};
    if (params_.logprobs || params_.top_logprobs > 0) {
        ComputeLogprobs(logits, token, &out.logprob, top_ids, top_lps);
    }
    return out;
}

void SequenceSampler::AcceptChains(llama_token token) {
    llama_sampler_accept(adjust_, token);
    llama_sampler_accept(pick_, token);
}

void SequenceSampler::ComputeLogprobs(const float * logits, llama_token token, float * logprob,
                                      int32_t * top_ids, float * top_lps) {
    const float max_logit = *std::max_element(logits, logits + n_vocab_);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab_; i++) sum += std::exp(static_cast<double>(logits[i] - max_logit));
    const float log_z = max_logit + static_cast<float>(std::log(sum));
    *logprob = logits[token] - log_z;
    const int32_t n = std::min(params_.top_logprobs, n_vocab_);
    if (n <= 0) return;
    std::vector<llama_token> ids(n_vocab_);
    for (int32_t i = 0; i < n_vocab_; i++) ids[i] = i;
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                      [&](llama_token a, llama_token b) { return logits[a] > logits[b]; });
    for (int32_t i = 0; i < n; i++) {
        top_ids[i] = ids[i];
        top_lps[i] = logits[ids[i]] - log_z;
    }
}

void SequenceSampler::Accept(const llama_token * tokens, size_t n, bool grammar) {
    for (size_t i = 0; i < n; i++) {
        if (!greedy_only_) AcceptChains(tokens[i]);
        if (grammar && grammar_ != nullptr) AcceptGrammar(tokens[i]);
    }
    // Replayed generated tokens (`grammar`) count toward min_tokens; prompt tokens do not.
    if (grammar) generated_ += static_cast<int32_t>(n);
}
