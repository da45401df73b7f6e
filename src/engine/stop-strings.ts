// Stop strings can span token boundaries: text is held back while it could still be the start
// of a stop string, and never emitted once a stop string matches.
export class StopStringMatcher {
  private pending = "";

  constructor(private readonly stops: string[]) {}

  /** Adds generated text; returns what is safe to emit and the stop string that matched, if one did (the earliest). */
  push(text: string): { emit: string; stoppedBy: string | undefined } {
    this.pending += text;
    let cut = -1;
    let stoppedBy: string | undefined;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        stoppedBy = s;
      }
    }
    if (stoppedBy !== undefined) {
      const emit = this.pending.slice(0, cut);
      this.pending = "";
      return { emit, stoppedBy };
    }
    const hold = this.heldBack();
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit, stoppedBy: undefined };
  }

  /** Text still held back (emitted when generation ends without a stop string). */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest;
  }

  // Length of the longest suffix of `pending` that is a proper prefix of some stop string.
  private heldBack(): number {
    let longest = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.pending.length); n > longest; n--) {
        if (this.pending.endsWith(s.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
