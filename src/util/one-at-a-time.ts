/** Runs async jobs one after another, in the order they were given; one that fails does not stop the next. */
export class OneAtATime {
  private last: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.last.then(job);
    this.last = result.catch(() => undefined);
    return result;
  }
}
