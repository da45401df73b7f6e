#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

SequenceSampler::SequenceSampler(const llama_vocab * vocab, const SamplerParams & params)
    : params_(params), n_vocab_(llama_vocab_n_tokens(vocab)) {
    if (!params.grammar.empty()) {
        grammar_ = llama_sampler_init_grammar(vocab, params.grammar.c_str(), "root");
        if (grammar_ == nullptr) {
            throw std::invalid_argument("invalid grammar");
        }
    }
    const bool penalties = params.repeat_last_n != 0 &&
        (params.repeat_penalty != 1.0f || params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f);
    // Plain greedy needs no chain at all: argmax over the raw logits, as llama.cpp does at temp <= 0.
    greedy_only_ = params.temperature <= 0.0f && !penalties && params.logit_bias.empty();

    chain_ = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (!params.logit_bias.empty()) {
        llama_sampler_chain_add(chain_, llama_sampler_init_logit_bias(
            n_vocab_, static_cast<int32_t>(params.logit_bias.size()), params.logit_bias.data()));
    }
    if (penalties) {
        const int32_t last_n = params.repeat_last_n < 0 ? 1 << 30 : params.repeat_last_n;
        llama_sampler_chain_add(chain_, llama_sampler_init_penalties(
            n_vocab_, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty));
    }
    if (params.temperature <= 0.0f) {
        llama_sampler_chain_add(chain_, llama_sampler_init_greedy());
        return;
    }
    // Same order as llama.cpp's common sampler: truncations first, temperature, then the draw.
    if (params.top_k > 0) llama_sampler_chain_add(chain_, llama_sampler_init_top_k(params.top_k));
    if (params.typical_p < 1.0f) llama_sampler_chain_add(chain_, llama_sampler_init_typical(params.typical_p, 1));
    if (params.top_p < 1.0f) llama_sampler_chain_add(chain_, llama_sampler_init_top_p(params.top_p, 1));
    if (params.min_p > 0.0f) llama_sampler_chain_add(chain_, llama_sampler_init_min_p(params.min_p, 1));
    llama_sampler_chain_add(chain_, llama_sampler_init_temp(params.temperature));
    llama_sampler_chain_add(chain_, llama_sampler_init_dist(params.seed));
}

SequenceSampler::~SequenceSampler() {
    if (chain_) llama_sampler_free(chain_);
    if (grammar_) llama_sampler_free(grammar_);
}

void SequenceSampler::FillCandidates(const float * logits) {
    candidates_.resize(n_vocab_);
    for (llama_token id = 0; id < n_vocab_; id++) {
        candidates_[id] = llama_token_data{id, logits[id], 0.0f};
    }
}

static llama_token Argmax(const float * logits, int32_t n) {
    return static_cast<llama_token>(std::max_element(logits, logits + n) - logits);
}

SampledToken SequenceSampler::Sample(const float * logits, int32_t * top_ids, float * top_lps) {
    llama_token token;
    if (greedy_only_ && grammar_ == nullptr) {
        token = Argmax(logits, n_vocab_);
    } else {
        FillCandidates(logits);
        llama_token_data_array cur{candidates_.data(), candidates_.size(), -1, false};
        llama_sampler_apply(chain_, &cur);
        token = cur.data[cur.selected].id;
        if (grammar_ != nullptr) {
            // Checking one token against the grammar is cheap; masking the whole vocabulary is
            // not, so do that only when the unconstrained choice is rejected (as llama.cpp does).
            llama_token_data single{token, 1.0f, 0.0f};
            llama_token_data_array one{&single, 1, -1, false};
            llama_sampler_apply(grammar_, &one);
            if (std::isinf(single.logit) && single.logit < 0) {
                FillCandidates(logits);
                cur = llama_token_data_array{candidates_.data(), candidates_.size(), -1, false};
                llama_sampler_apply(grammar_, &cur);
                llama_sampler_apply(chain_, &cur);
                token = cur.data[cur.selected].id;
            }
            llama_sampler_accept(grammar_, token);
        }
    }
    if (!greedy_only_) llama_sampler_accept(chain_, token);

    SampledToken out{token, std::numeric_limits<float>::quiet_NaN()};
    if (params_.logprobs || params_.top_logprobs > 0) {
        ComputeLogprobs(logits, token, &out.logprob, top_ids, top_lps);
    }
    return out;
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
        if (!greedy_only_) llama_sampler_accept(chain_, tokens[i]);
        if (grammar && grammar_ != nullptr) llama_sampler_accept(grammar_, tokens[i]);
    }
}
