// Fill-in-the-middle prompts (a generate request with a `suffix`), laid out token for token as
// llama-server's /infill lays them (format_prompt_infill, tools/server/server-common.cpp), with
// the model's own FIM tokens as llama.cpp reads them from the GGUF (or finds them by name):
//   [FIM_REP]myproject\n [FIM_SEP]filename\n [BOS] [FIM_PRE]prefix [FIM_SUF]suffix [FIM_MID]
// The repository and file markers come only with a vocabulary that has those tokens. The model
// then writes the middle and ends with an end-of-generation token (llama.cpp counts FIM_PAD,
// FIM_REP and FIM_SEP among them).
import { BadRequestError } from "../api/errors.js";
import { tokenizeText } from "../native/index.js";

/** The vocabulary's FIM token ids, -1 where it has none (llama_vocab_fim_*). */
export interface FimTokens {
  pre: number;
  suf: number;
  mid: number;
  pad: number;
  rep: number;
  sep: number;
}

export interface FimTokenizer {
  readonly info: { bos: number; addBos: boolean; fim: FimTokens };
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
}

export interface FimRequest {
  model: string;
  /** The text before the hole (Ollama's `prompt`). */
  prefix: string;
  suffix: string;
  /** The sequence's context (num_ctx): the prompt must be shorter. */
  numCtx: number;
  /** Tokens a prompt that does not fit may keep (num_ctx less the room to generate, as for any prompt). */
  truncatedRoom: number;
  /** `truncate: false`: a prompt that does not fit is an error instead. */
  truncate: boolean;
}

/** The reason a vocabulary cannot fill in the middle, as llama-server words it; undefined when it can. */
export function missingFimTokens(fim: FimTokens): string | undefined {
  const missing = (["pre", "suf", "mid"] as const).filter((k) => fim[k] < 0).map((k) => FIM_NAMES[k]);
  return missing.length ? `its vocabulary has no fill-in-the-middle ${missing.join(", ")} token` : undefined;
}

const FIM_NAMES = { pre: "prefix", suf: "suffix", mid: "middle" } as const;

/** The prompt's tokens; a long prefix or suffix is tokenized off the JS thread (tokenizeText). */
export async function buildFimPrompt(req: FimRequest, tokenizer: FimTokenizer): Promise<number[]> {
  const { fim, bos, addBos } = tokenizer.info;
  const missing = missingFimTokens(fim);
  if (missing) throw new BadRequestError(`${req.model} does not support insert: ${missing}`);
  // Plain text: markers typed into the code are not the model's special tokens.
  const text = async (s: string) => [...(await tokenizeText(tokenizer, s, false, false))];
  const fixed = [
    ...(fim.rep >= 0 ? [fim.rep, ...(await text("myproject\n"))] : []),
    ...(fim.sep >= 0 ? [fim.sep, ...(await text("filename\n"))] : []),
    ...(addBos ? [bos] : []),
  ];
  const [prefix, suffix] = await Promise.all([text(req.prefix), text(req.suffix)]);
  const { prefixTake, suffixTake } = fitFim(prefix.length, suffix.length, fixed.length + 3, req);
  return [
    ...fixed,
    fim.pre, ...prefix.slice(prefix.length - prefixTake),
    fim.suf, ...suffix.slice(0, suffixTake),
    fim.mid,
  ];
}

/**
 * How much of the prefix (its end) and the suffix (its start) the prompt keeps: all of both when
 * it fits the context; else the prefix takes 3/4 of the room and the suffix the rest, the
 * proportions of llama-server's cut, either one taking what the other leaves.
 */
function fitFim(prefixLength: number, suffixLength: number, markers: number, req: FimRequest) {
  const total = prefixLength + suffixLength + markers;
  if (total < req.numCtx) return { prefixTake: prefixLength, suffixTake: suffixLength };
  const available = req.truncatedRoom - markers;
  if (!req.truncate || available <= 0) {
    throw new BadRequestError(`input length (${total} tokens) exceeds the context length (num_ctx ${req.numCtx})`);
  }
  const suffixTake = Math.min(suffixLength, Math.max(available - prefixLength, Math.floor(available / 4)));
  return { prefixTake: Math.min(prefixLength, available - suffixTake), suffixTake };
}
