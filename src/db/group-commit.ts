export interface GroupCommitOptions<Item> {
  /** Most items in one statement. */
  maxBatch: number;
  /** Most statements running at once; whoever arrives meanwhile waits for the next one. */
  inFlight: number;
  /** Items with the same key never share a statement (one reader's two requests, say). */
  keyOf: (item: Item) => string;
}

interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs what many callers ask for at the same moment as one statement, so they share a round trip
 * and a commit (group commit): on two cores, per-statement costs are most of a small request's.
 * A caller alone runs at once; under load, each statement takes everyone who arrived while the
 * last ones ran. Each caller still gets its own result only after its statement commits. If a
 * statement fails, its items are tried one by one, so a bad item fails only its own caller.
 * Only waiting callers live here: nothing that decides an outcome is kept in memory.
 */
export class GroupCommit<Item, Result> {
  private waiting: Waiting<Item, Result>[] = [];
  private running = 0;

  constructor(
    private readonly run: (items: Item[]) => Promise<Result[]>,
    private readonly options: GroupCommitOptions<Item>,
  ) {}

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.running < this.options.inFlight && this.waiting.length > 0) {
      const batch = this.takeBatch();
      this.running++;
      void this.runBatch(batch);
    }
  }

  private takeBatch(): Waiting<Item, Result>[] {
    const keys = new Set<string>();
    const batch: Waiting<Item, Result>[] = [];
    const later: Waiting<Item, Result>[] = [];
    for (const waiting of this.waiting) {
      const key = this.options.keyOf(waiting.item);
      if (batch.length < this.options.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(waiting);
      } else {
        later.push(waiting);
      }
    }
    this.waiting = later;
    return batch;
  }

  private async runBatch(batch: Waiting<Item, Result>[]): Promise<void> {
    let results: Result[] | undefined;
    try {
      results = await this.run(batch.map((waiting) => waiting.item));
    } catch (error) {
      await this.retryOneByOne(batch, error);
    }
    // The next statement leaves before these callers are answered: the database works meanwhile.
    this.running--;
    this.startBatches();
    if (results) batch.forEach((waiting, index) => waiting.resolve(results[index]!));
  }

  private async retryOneByOne(batch: Waiting<Item, Result>[], error: unknown): Promise<void> {
    if (batch.length === 1) {
      batch[0]!.reject(error);
      return;
    }
    await Promise.all(
      batch.map((waiting) =>
        this.run([waiting.item]).then(([result]) => waiting.resolve(result!), waiting.reject),
      ),
    );
  }
}
