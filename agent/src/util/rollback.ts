/**
 * An explicit undo stack for multi-step kernel changes (CNI ADD): push an
 * undo after each step succeeds, `commit()` at the end, or `unwind()` to run
 * every undo in reverse order. An undo that fails does not stop the others;
 * their errors are collected and returned.
 */
export class Rollback {
  private readonly undos: Array<{ what: string; undo: () => void | Promise<void> }> = [];
  private done = false;

  /** Records how to undo a step that just succeeded. */
  push(what: string, undo: () => void | Promise<void>): void {
    if (this.done) throw new Error(`rollback: push "${what}" after commit/unwind`);
    this.undos.push({ what, undo });
  }

  /** The steps recorded so far, oldest first (for logs and tests). */
  get steps(): string[] {
    return this.undos.map((u) => u.what);
  }

  /** Keeps every step: nothing will be undone. */
  commit(): void {
    this.done = true;
    this.undos.length = 0;
  }

  /** Undoes every recorded step, newest first; returns the undos that failed. */
  async unwind(): Promise<Array<{ what: string; error: unknown }>> {
    this.done = true;
    const failed: Array<{ what: string; error: unknown }> = [];
    while (this.undos.length > 0) {
      const { what, undo } = this.undos.pop()!;
      try {
        await undo();
      } catch (error) {
        failed.push({ what, error });
      }
    }
    return failed;
  }
}
