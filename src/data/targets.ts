/**
 * Training and evaluation targets derived from a case's annotations (paper §III-C):
 *  - the agreement-count map per structure, M(x) = Σ_m y^m (Eq. 2): how many annotators mark each
 *    pixel, 0..M — the M+1-class target of the variation (AVM) head;
 *  - the mean-vote map, count / (annotators available) — the calibrated "soft" target;
 *  - each annotator's binary map and the availability mask — the targets of the preference (APM) head.
 *
 * A missing annotation is neither a "no" nor a "yes": it is left out of the count, and the mean vote
 * divides by the number of annotators that are available for that case, not by M.
 */
import type { CaseAnnotations, CaseRecord, Dataset } from './dataset';
import { readAnnotations } from './dataset';

/** Per pixel, the number of available annotators whose mask marks it (any non-zero value marks). */
export function agreementCounts(masks: Uint8Array[], available: boolean[]): Uint8Array {
  if (masks.length !== available.length) {
    throw new Error(`agreementCounts: ${masks.length} masks but ${available.length} availability flags`);
  }
  if (masks.length > 255) throw new Error('agreementCounts: more than 255 annotators do not fit a uint8 count');
  const n = masks.length > 0 ? masks[0].length : 0;
  const counts = new Uint8Array(n);
  masks.forEach((mask, m) => {
    if (mask.length !== n) throw new Error(`agreementCounts: mask ${m} has ${mask.length} pixels, mask 0 has ${n}`);
    if (!available[m]) return;
    for (let i = 0; i < n; i++) if (mask[i] !== 0) counts[i]++;
  });
  return counts;
}

/**
 * The AVM's class for `count` of `available` annotators when the dataset has `annotators`: the count
 * rescaled to M (round(count · M / A)), so class c always means "a fraction c/M of the annotators".
 * 0 when nobody annotated.
 */
export function agreementClass(count: number, available: number, annotators: number): number {
  return available > 0 ? Math.round((count * annotators) / available) : 0;
}

/** count / annotators, in [0, 1]; all zeros when no annotator is available (there is no vote). */
export function meanVote(counts: Uint8Array, annotators: number): Float32Array {
  const out = new Float32Array(counts.length);
  if (annotators <= 0) return out;
  const inv = 1 / annotators;
  for (let i = 0; i < counts.length; i++) out[i] = counts[i] * inv;
  return out;
}

export interface CaseTargets {
  width: number;
  height: number;
  /** Per annotator. */
  available: boolean[];
  /** Number of available annotators. */
  annotatorCount: number;
  /** [structure] agreement counts 0..annotatorCount. */
  agreementCounts: Uint8Array[];
  /** [structure] counts / annotatorCount. */
  meanVotes: Float32Array[];
  /** [annotator][structure] 0/1; all zero when missing. */
  annotatorMasks: Uint8Array[][];
}

/** All targets of one case, computed once from its annotations. */
export function caseTargets(ann: CaseAnnotations): CaseTargets {
  const annotatorCount = ann.available.filter(Boolean).length;
  const structures = ann.masks[0]?.length ?? 0;
  const counts = Array.from({ length: structures }, (_, k) => agreementCounts(ann.masks.map((perStructure) => perStructure[k]), ann.available));
  return {
    width: ann.width,
    height: ann.height,
    available: ann.available,
    annotatorCount,
    agreementCounts: counts,
    meanVotes: counts.map((c) => meanVote(c, annotatorCount)),
    annotatorMasks: ann.masks,
  };
}

/** Reads a case's label maps at their original size and derives its targets (for evaluation). */
export async function readCaseTargets(ds: Dataset, c: CaseRecord): Promise<CaseTargets> {
  return caseTargets(await readAnnotations(ds, c));
}
