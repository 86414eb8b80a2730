// Progress of a whole experiment: epochs done out of all runs' epochs, and an ETA from the pace of the
// epochs trained in this session (reused or already-finished epochs count as done but not as pace).

export class ExperimentProgress {
  private done = 0;
  private trainedNow = 0;
  private readonly started: number;

  constructor(readonly totalEpochs: number, private readonly now = () => Date.now()) {
    this.started = now();
  }

  /** Epochs finished before this session (reused runs, resumed checkpoints). */
  skip(epochs: number): void {
    this.done += epochs;
  }

  /** One epoch trained in this session. */
  epochTrained(): void {
    this.done++;
    this.trainedNow++;
  }

  get epochsDone(): number {
    return this.done;
  }

  /** Seconds left, or null before the first trained epoch gives a pace. Includes evaluation time in the pace. */
  etaSeconds(): number | null {
    if (this.trainedNow === 0) return null;
    const perEpoch = (this.now() - this.started) / 1000 / this.trainedNow;
    return Math.max(0, this.totalEpochs - this.done) * perEpoch;
  }

  /** 'experiment 45/260 epochs, ETA 12m 30s'. */
  describe(): string {
    const eta = this.etaSeconds();
    return `experiment ${this.done}/${this.totalEpochs} epochs, ETA ${eta === null ? '–' : formatDuration(eta)}`;
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
