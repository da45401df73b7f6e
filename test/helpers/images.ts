// Test images made in the test: a small PNG encoder (truecolor, no filtering) over node:zlib, and
// the tiny-vision model pair written by the project's fixture generator.
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { writeSyntheticVisionModel, type SyntheticVisionPreset } from "../../src/gguf/synthetic-projector.js";

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG of `width` x `height` RGB pixels, `pixel(x, y)` giving [r, g, b]. */
export function encodePng(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * 3);
    for (let x = 0; x < width; x++) rows.set(pixel(x, y), row + 1 + x * 3);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolor, deflate, no filter, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}

/** A 48 x 40 gradient with a diagonal stripe; `seed` shifts its colours (different images, different hashes). */
export function testImage(seed = 0): Buffer {
  return encodePng(48, 40, (x, y) => [(x * 5 + seed * 40) & 255, (y * 6) & 255, Math.abs(x - y) < 4 ? 255 : (seed * 90) & 255]);
}

/** testImage(0) in another format (test/helpers/images/README.md says how each was made). */
export function imageFile(name: "test.jpg" | "test.gif" | "animated.gif" | "test.bmp" | "lossy.webp" | "lossless.webp" | "test.tiff"): Buffer {
  return readFileSync(path.join(import.meta.dirname, "images", name));
}

/** A WebP (lossless) whose header claims `width` x `height` pixels, with no pixel data behind it. */
export function webpHeaderOnly(width: number, height: number): Buffer {
  const bits = Buffer.alloc(4);
  bits.writeUInt32LE(((width - 1) | ((height - 1) << 14)) >>> 0, 0);
  const payload = Buffer.concat([Buffer.of(0x2f), bits, Buffer.alloc(1)]);
  const chunk = Buffer.concat([Buffer.from("VP8L"), u32(payload.length - 1), payload]);
  return Buffer.concat([Buffer.from("RIFF"), u32(4 + chunk.length), Buffer.from("WEBP"), chunk]);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return b;
}

const visionDirs = new Map<SyntheticVisionPreset, Promise<string>>();

/**
 * A vision pair (model.gguf, mmproj.gguf; tiny-vision unless told), written once per test process
 * into a temporary folder. F32 weights: with q8_0 the random model's near-tied logits flipped on
 * the last bits that batch composition changes (one of 15 batched answers differed from its
 * answer alone).
 */
export function tinyVisionModel(preset: SyntheticVisionPreset = "tiny-vision"): Promise<{ model: string; projector: string; dir: string }> {
  let dir = visionDirs.get(preset);
  if (!dir) {
    dir = (async () => {
      const out = mkdtempSync(path.join(os.tmpdir(), `vllama-${preset}-`));
      await writeSyntheticVisionModel({ preset, dir: out, type: "f32" });
      return out;
    })();
    visionDirs.set(preset, dir);
  }
  return dir.then((d) => ({ dir: d, model: path.join(d, "model.gguf"), projector: path.join(d, "mmproj.gguf") }));
}

/**
 * llama.cpp's own answer on tiny-vision (f32, seed 0) for testImage(0): greedy, 12 tokens, by
 * llama-mtmd-cli compiled from the same release (deps/llama.cpp-v0.5.0) against the same
 * libraries as the addon, on 2026-12-01:
 *   S=deps/llama.cpp-v0.5.0; g++ -std=c++17 -O2 -o .bench/mtmd-cli/llama-mtmd-cli $S/tools/mtmd/mtmd-cli.cpp \
 *     -I$S/include -I$S/ggml/include -I$S/common -I$S/tools/mtmd -I$S/vendor build/libvllama_mtmd.a \
 *     -Lbuild/Release -l:libllama-common.so -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so \
 *     -Wl,-rpath,$PWD/build/Release -lpthread
 *   (the pair by writeSyntheticVisionModel({ preset: "tiny-vision", type: "f32" }), testImage(0) as image.png,
 *   the CPU backends of build/Release linked beside the tool)
 *   llama-mtmd-cli -m model.gguf --mmproj mmproj.gguf --image image.png -p "What is in this picture?" -n 12 --temp 0 -c 512 --jinja
 */
export const VISION_REFERENCE_QUESTION = "What is in this picture?";
export const VISION_REFERENCE_ANSWER = " restoconsulté Santo Justin wohltrackasmaomicзеounce encontrinsen";

/**
 * llama.cpp's own answer on tiny-vision-mrope (Qwen2-VL's shape, f32, seed 0) for testImage(0),
 * by the same llama-mtmd-cli build and command (its CPU backend on 1 thread, `-t 1`), on
 * 2026-12-02: greedy, 12 tokens.
 */
export const VISION_MROPE_REFERENCE_ANSWER = "他曾GET therapём Martin Paradisedebug Jah/source경 Repซ";

/**
 * llama.cpp's own answer on tiny-vision-qwen3vl (Qwen3-VL's shape with two deepstack embeddings per
 * row, f32, seed 0) for testImage(0), by the same llama-mtmd-cli build and command (`-t 1`), on
 * 2026-12-03: greedy, 12 tokens.
 */
export const VISION_QWEN3VL_REFERENCE_ANSWER = 'weather汇 AV doctr IEntity锊벳価暴风 màn disjoint "></';

/**
 * llama.cpp's own answer on tiny-vision-gemma3 (Gemma 3's shape: non-causal image rows, a
 * 16-position sliding window; f32, seed 0) for testImage(0), by the same llama-mtmd-cli build and
 * command (`-t 1`), on 2026-12-03: greedy, 12 tokens.
 */
export const VISION_GEMMA3_REFERENCE_ANSWER = "گ International Dresнием Internationalagi septiembre conservation Internationalngotoclean";

/**
 * llama.cpp's own answer on tiny-vision-tiles (LLaVA-1.6's tiling: testImage(0) is an overview and
 * 2 x 2 tiles, 5 chunks of 16 rows; f32, seed 0), by the same llama-mtmd-cli build and command
 * (`-t 1`), on 2026-12-03: greedy, 12 tokens.
 */
export const VISION_TILES_REFERENCE_ANSWER = "citep metropolupt Jersey Джон röm Species firm roboterno passage between";

/**
 * llama.cpp's own answer on tiny-vision-idefics3 (Idefics3's tiling: testImage(0) is an overview
 * and 2 x 2 tiles, 5 chunks of 16 rows with marker text between; f32, seed 0), by the same
 * llama-mtmd-cli build and command (`-t 1`), on 2026-12-03: greedy, 12 tokens.
 */
export const VISION_IDEFICS3_REFERENCE_ANSWER = " Санкт Java万 Esteicz Franc eigen distingu Ass висиниgin términ";
