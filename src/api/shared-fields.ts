// Request fields that more than one API module (ollama.ts, openai.ts) spells the same way.
import { z } from "zod";
import { REQUIRED } from "./validate.js";

export const ModelName = z.string().min(1, { error: REQUIRED });
export const TopLogprobs = z.int().min(0).max(20);
/** Ollama's `think` levels; "max" asks for the highest level the template has. */
export const ThinkLevelSchema = z.enum(["low", "medium", "high", "max"]);
/** OpenAI's `reasoning_effort`: "none" and "minimal" turn thinking off. */
export const ReasoningEffortSchema = z.enum(["none", "minimal", "low", "medium", "high"]);
/** One stop string or a list; always a list after parsing. */
export const Stop = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === "string" ? [v] : v));

/** A function the model may call: Ollama took OpenAI's shape as it is. */
export const ToolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type Tool = z.infer<typeof ToolSchema>;

/** OpenAI's chat tool_choice, also taken by /api/chat (a vllama extension): src/chat/tool-choice.ts. */
export const ChatToolChoiceSchema = z.union(
  [z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: z.string().min(1) }) })],
  { error: 'expected "none", "auto", "required" or {"type": "function", "function": {"name": ...}}' },
);
export type ChatToolChoice = z.infer<typeof ChatToolChoiceSchema>;
