// One sequence's sampling state: llama.cpp sampler chains (the logit adjustments - bias,
// penalties - then the pick - truncations, temperature, draw) plus an optional grammar, and the
// candidate buffer reused across steps.
#pragma once

#include "llama.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;
    float top_p = 0.9f;
    float min_p = 0.0f;
    float typical_p = 1.0f;
    uint32_t seed = LLAMA_DEFAULT_SEED;
    int32_t repeat_last_n = 64;
    float repeat_penalty = 1.0f;
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    std::vector<llama_logit_bias> logit_bias;
    std::string grammar;
    // A lazy grammar (llama.cpp's lazy grammar sampler) applies only once the text generated so far
    // matches one of these regular expressions, or one of these tokens is sampled: until then
    // decoding is free. Lazy when either list is non-empty.
    std::vector<std::string> grammar_trigger_patterns;
    std::vector<llama_token> grammar_trigger_tokens;
    // Text the prompt ended with that a (non-lazy) grammar reads before the first sampled token:
    // the chat library's grammars start at the assistant's turn header, as llama-server prefills them.
    std::string grammar_prefix;
    int32_t top_logprobs = 0;
    bool logprobs = false;
    // End-of-generation tokens are masked until this many tokens were sampled (OpenAI's and
    // vLLM's min_tokens): in the sampler, so the pick is the model's best non-ending token.
    int32_t min_tokens = 0;
};

struct SampledToken {
    llama_token token;
    float logprob;  // NaN unless requested
};

class SequenceSampler {
  public:
    // Throws std::invalid_argument when the grammar or a trigger pattern does not parse, or the
    // grammar refuses its prefix.
    SequenceSampler(const llama_vocab * vocab, const SamplerParams & params);
    ~SequenceSampler();
    SequenceSampler(const SequenceSampler &) = delete;
    SequenceSampler & operator=(const SequenceSampler &) = delete;

    // Samples from one row of logits and accepts the result (penalty window, grammar state).
    // `top_ids`/`top_logprobs` receive `wants_top()` entries when logprobs are requested.
    // With `defer`, a choice the grammar refuses is not searched for here: the row is kept and
    // the token is LLAMA_TOKEN_NULL until PickDeferred (the search may take a whole vocabulary's
    // grammar checks, which a step shared with other sequences must not wait for).
    SampledToken Sample(const float * logits, int32_t * top_ids, float * top_logprobs, bool defer);
    // The search a deferred Sample left, over its kept row, then accepted as Sample does;
    // LLAMA_TOKEN_NULL (nothing accepted) when Cancel() stopped it.
    SampledToken PickDeferred(int32_t * top_ids, float * top_logprobs);
    bool awaiting_pick() const { return awaiting_pick_; }
    // Any thread: a running PickDeferred stops at its next block of candidates.
    void Cancel() { cancelled_ = true; }
    // One user at a time (a step, a deferred pick, acceptTokens): claimed on the JS thread
    // before the work is handed to a worker, released on the JS thread after it.
    bool TryClaim() { return !claimed_.exchange(true); }
    void Release() { claimed_ = false; }
    // Feeds tokens already in the context to the penalty window (the prompt), and to the
    // grammar too when `grammar` (generated tokens replayed after a preemption).
    void Accept(const llama_token * tokens, size_t n, bool grammar);
    int32_t wants_top() const { return params_.top_logprobs; }

  private:
    // The candidates from one row of logits, end-of-generation masked while below min_tokens.
    void FillCandidates(const float * logits);
    bool SuppressingEog() const { return generated_ < params_.min_tokens; }
    // Adjusts and picks from `cur`, unconstrained.
    llama_token Pick(llama_token_data_array * cur);
    // Picks among the tokens the grammar allows (see sampler.cpp); LLAMA_TOKEN_NULL when
    // `cancellable` and Cancel() was called.
    llama_token PickAllowed(const float * logits, bool cancellable);
    // Accepts the chosen token (grammar, penalty window) and computes its logprobs.
    SampledToken Finish(llama_token token, const float * logits, int32_t * top_ids, float * top_logprobs);
    size_t AllowedNeeded() const;
    void AcceptChains(llama_token token);
    void InitGrammar(const llama_vocab * vocab);
    // Feeds the grammar; a lazy grammar whose trigger text the grammar then refuses is dropped.
    void AcceptGrammar(llama_token token);
    void ComputeLogprobs(const float * logits, llama_token token, float * logprob, int32_t * top_ids, float * top_lps);

    SamplerParams params_;
    int32_t n_vocab_;
    llama_sampler * adjust_ = nullptr;
    llama_sampler * pick_ = nullptr;
    llama_sampler * grammar_ = nullptr;
    bool greedy_only_ = false;
    std::vector<llama_token_data> candidates_;
    // The vocabulary's end-of-generation tokens, listed only when min_tokens asks for them.
    std::vector<llama_token> eog_tokens_;
    // Tokens generated so far (sampled, or replayed after a preemption).
    int32_t generated_ = 0;
    // The row a deferred Sample kept (reused: a row of Qwen2's vocabulary is 600 KB).
    std::vector<float> deferred_logits_;
    std::atomic<bool> awaiting_pick_{false}, cancelled_{false}, claimed_{false};
};
