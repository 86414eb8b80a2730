// Progress of a whole experiment: optimiser steps done out of all runs' steps, and an ETA from the pace
// of the steps trained in this session (reused or already-trained steps count as done but not as pace).

export class ExperimentProgress {
  private done = 0;
  private trainedNow = 0;
  private readonly started: number;

  constructor(readonly totalSteps: number, private readonly now = () => Date.now()) {
    this.started = now();
  }

  /** Steps finished before this session (reused runs, resumed checkpoints). */
  skip(steps: number): void {
    this.done += steps;
  }

  /** Steps trained in this session. */
  trained(steps: number): void {
    this.done += steps;
    this.trainedNow += steps;
  }

  get stepsDone(): number {
    return this.done;
  }

  /** Seconds left, or null before the first trained step gives a pace. Includes evaluation time in the pace. */
  etaSeconds(): number | null {
    if (this.trainedNow === 0) return null;
    const perStep = (this.now() - this.started) / 1000 / this.trainedNow;
    return Math.max(0, this.totalSteps - this.done) * perStep;
  }

  /** 'experiment 450/2600 steps, ETA 12m 30s'. */
  describe(): string {
    const eta = this.etaSeconds();
    return `experiment ${this.done}/${this.totalSteps} steps, ETA ${eta === null ? '–' : formatDuration(eta)}`;
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
