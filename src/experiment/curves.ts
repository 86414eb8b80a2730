// Learning curves of an experiment's runs, read back from each run's log.jsonl (one 'round' event
// per validated round: stage, step within the stage, mean training loss, learning rate, validation
// scores or null), and whether each stage was still improving at the end of its budget.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StageTrend, TrendPoint, stageTrend, stillImproving } from './convergence';
import { TEXT_LIMIT, readBounded, readJsonText } from '../io/readBounded';

export interface CurvePoint {
  /** Optimiser steps since the run's first stage began (stages follow each other). */
  step: number;
  stage: string;
  /** Step within the stage. */
  stage_step: number;
  /** Mean training loss over the round's steps. */
  loss: number;
  /** Validation scores (fractions, means over structures; null without held-out cases). */
  mean_voting: number | null;
  average: number | null;
}

export interface CurveStage {
  name: string;
  steps: number;
  /** Global step at which the stage begins. */
  offset: number;
  /** What the trend is judged on: the stage's validation selection score, or its training loss. */
  judged_on: 'mean_voting' | 'average' | 'mean_of_mean_voting_and_average' | 'loss';
  trend: StageTrend;
}

export interface RunCurve {
  points: CurvePoint[];
  stages: CurveStage[];
  /** Any stage still improving over the last quarter of its steps (null: too few rounds to tell). */
  still_improving: boolean | null;
}

type Selection = 'mean_voting' | 'average' | 'mean_of_mean_voting_and_average';
interface RoundEvent { stage: string; step: number; steps: number; loss: number; val: { mean_voting: number; average: number } | null }
interface StageRecord { name: string; steps: number; select?: string }

/**
 * The curve of the run in `runDir`. Rounds a resume trained again are logged again; the last entry
 * of a (stage, step) is the one whose weights the run continued from. Stages and what selected their
 * weights come from the run's summary.json when it has finished, else from the log's order.
 */
export function readRunCurve(runDir: string): RunCurve {
  const rounds = new Map<string, RoundEvent>();
  for (const e of readJsonLines(path.join(runDir, 'log.jsonl'))) {
    if (e.event !== 'round' || typeof e.stage !== 'string' || typeof e.step !== 'number' || typeof e.loss !== 'number') continue;
    const key = `${e.stage}\u0000${e.step}`;
    rounds.delete(key);
    rounds.set(key, e as unknown as RoundEvent);
  }
  const logged = [...rounds.values()];
  const stages: StageRecord[] = readStages(runDir) ?? [...new Set(logged.map((r) => r.stage))].map((name) => ({ name, steps: logged.find((r) => r.stage === name)!.steps }));
  return curveOf(stages, logged);
}

/** The curve of logged rounds over the given stages (pure: the part of readRunCurve that does not read files). */
export function curveOf(stages: readonly StageRecord[], rounds: readonly RoundEvent[]): RunCurve {
  const points: CurvePoint[] = [];
  const curveStages: CurveStage[] = [];
  let offset = 0;
  for (const stage of stages) {
    const own = rounds.filter((r) => r.stage === stage.name).sort((a, b) => a.step - b.step);
    for (const r of own) {
      points.push({ step: offset + r.step, stage: stage.name, stage_step: r.step, loss: r.loss, mean_voting: r.val?.mean_voting ?? null, average: r.val?.average ?? null });
    }
    const validated = own.length > 0 && own.every((r) => r.val);
    const judgedOn: CurveStage['judged_on'] = validated ? asSelection(stage.select) : 'loss';
    const trendPoints: TrendPoint[] = own.map((r) => ({ step: r.step, value: judgedOn === 'loss' ? r.loss : selectionValue(r.val!, judgedOn) }));
    curveStages.push({ name: stage.name, steps: stage.steps, offset, judged_on: judgedOn, trend: stageTrend(trendPoints, stage.steps, judgedOn === 'loss' ? 'lower' : 'higher') });
    offset += stage.steps;
  }
  return { points, stages: curveStages, still_improving: stillImproving(curveStages.map((s) => s.trend)) };
}

/** The value a curve plots: the validation score (mean of Mean Voting and Average) when there is one, else the training loss. */
export function plottedValue(p: CurvePoint, validation: boolean): number {
  return validation ? selectionValue({ mean_voting: p.mean_voting ?? NaN, average: p.average ?? NaN }, 'mean_of_mean_voting_and_average') : p.loss;
}

function selectionValue(val: { mean_voting: number; average: number }, select: Selection): number {
  return select === 'mean_of_mean_voting_and_average' ? (val.mean_voting + val.average) / 2 : val[select];
}

function asSelection(select: string | undefined): Selection {
  return select === 'mean_voting' || select === 'average' ? select : 'mean_of_mean_voting_and_average';
}

function readStages(runDir: string): StageRecord[] | null {
  try {
    const summary = readJsonText(path.join(runDir, 'summary.json'), 'a training summary') as { stages?: StageRecord[] };
    return Array.isArray(summary.stages) ? summary.stages : null;
  } catch {
    return null;
  }
}

/** The log's objects; a line a crash cut short (or no log at all) gives nothing rather than an error: curves are a report. */
function readJsonLines(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readBounded(file, TEXT_LIMIT, 'a training log').toString('utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    try {
      const value = JSON.parse(line);
      return value && typeof value === 'object' ? [value as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}
