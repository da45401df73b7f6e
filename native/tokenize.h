// Tokenization in time linear in the number of special tokens in the text.
#pragma once

#include "llama.h"

#include <string>
#include <vector>

// A model's special tokens (control, user-defined, unknown): what llama.cpp's tokenizer looks for in text.
struct SpecialToken {
    llama_token id;
    std::string text;
    llama_token_attr attr;
};

std::vector<SpecialToken> CollectSpecialTokens(const llama_vocab * vocab);

// The tokens llama_tokenize gives for `text`, in linear time however many special tokens it holds.
std::vector<llama_token> TokenizeText(const llama_vocab * vocab, const std::vector<SpecialToken> & specials,
                                      const std::string & text, bool add_special, bool parse_special);
