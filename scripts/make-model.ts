// Writes a random-weight GGUF of a real architecture's shape with its real tokenizer:
//   node --import tsx scripts/make-model.ts --preset llama110m --type q8_0 --out PATH
// --context-length sets the trained context the GGUF declares (llama-server caps each slot at it):
//   node --import tsx scripts/make-model.ts --preset llama110m --context-length 8192 --out PATH
// A vision preset writes a folder with the model and its projector:
//   node --import tsx scripts/make-model.ts --preset tiny-vision --out DIR   (DIR/model.gguf, DIR/mmproj.gguf)
// (tiny-vision: LLaVA-1.5's shape; tiny-vision-mrope: Qwen2-VL's, M-RoPE positions; tiny-vision-qwen3vl:
// Qwen3-VL's, M-RoPE and deepstack; tiny-vision-gemma3: Gemma 3's, non-causal image rows, a sliding window;
// tiny-vision-tiles: LLaVA-1.6's tiling, an image as an overview and tiles; tiny-vision-idefics3: SmolVLM's,
// its tiles with marker text between)
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { formatParameterSize } from "../src/gguf/reader.js";
import { isSyntheticVisionPreset, SYNTHETIC_VISION_PRESETS, writeSyntheticVisionModel } from "../src/gguf/synthetic-projector.js";
import { SYNTHETIC_PRESETS, writeSyntheticModel, type SyntheticPreset } from "../src/gguf/synthetic.js";

const argv = await yargs(hideBin(process.argv))
  .usage("$0 --preset NAME --type f32|f16|q8_0 --out PATH")
  .option("preset", {
    choices: [...Object.keys(SYNTHETIC_PRESETS), ...Object.keys(SYNTHETIC_VISION_PRESETS)],
    demandOption: true,
    describe: "model shape and vocabulary (a vision preset writes a folder: model.gguf and mmproj.gguf)",
  })
  .option("type", { choices: ["f32", "f16", "q8_0"] as const, default: "q8_0" as const, describe: "weight type" })
  .option("out", { type: "string", demandOption: true, describe: "GGUF file to write (a folder for a vision preset)" })
  .option("seed", { type: "number", default: 0, describe: "PRNG seed for the weights" })
  .option("context-length", { type: "number", describe: "trained context length to declare instead of the preset's" })
  .option("chat-template", {
    type: "string",
    describe: 'chat template to embed; "default" picks the vocabulary\'s usual one',
  })
  .strict()
  .parse();

const chatTemplate = argv.chatTemplate === "default" ? true : argv.chatTemplate;
const started = performance.now();
const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
try {
  if (isSyntheticVisionPreset(argv.preset)) {
    const { model, projector } = await writeSyntheticVisionModel({ preset: argv.preset, dir: argv.out, type: argv.type, seed: argv.seed });
    console.log(
      `wrote ${model.path} (${argv.type}, ${formatParameterSize(model.parameterCount)} parameters) and ${projector.path} ` +
        `(${formatParameterSize(projector.parameterCount)} parameters, ${projector.imageTokens} rows per image) in ${seconds()}s`,
    );
  } else {
    const preset = argv.preset as SyntheticPreset;
    if (argv.contextLength !== undefined && !(Number.isInteger(argv.contextLength) && argv.contextLength >= 1)) {
      throw new Error(`--context-length must be a positive integer, got ${argv.contextLength}`);
    }
    const summary = await writeSyntheticModel({
      ...(argv.contextLength === undefined ? { preset } : { shape: { ...SYNTHETIC_PRESETS[preset], contextLength: argv.contextLength }, name: preset }),
      type: argv.type,
      out: argv.out,
      seed: argv.seed,
      chatTemplate,
    });
    console.log(
      `wrote ${summary.path}: ${argv.preset} ${argv.type}, ${formatParameterSize(summary.parameterCount)} parameters, ` +
        `${summary.tensorCount} tensors, vocab ${summary.nVocab}, in ${seconds()}s`,
    );
  }
} catch (error) {
  // Bad options and unwritable paths are the user's to fix: a message, not a stack trace.
  console.error(`make-model: ${(error as Error).message}`);
  process.exitCode = 1;
}
