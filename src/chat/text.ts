/** Length of the longest suffix of `text` that is a proper prefix of `tag`: a tag that may be arriving. */
export function partialSuffixLength(text: string, tag: string): number {
  for (let length = Math.min(tag.length - 1, text.length); length > 0; length--) {
    if (text.endsWith(tag.slice(0, length))) return length;
  }
  return 0;
}
