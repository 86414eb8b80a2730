// Which runs an experiment trains: one per row of Table II (M1..MM expanded from `single`), plus, with
// --ablations, the AVAP variants of Tables III (pre-training), IV (controller conditioning) and V
// (training strategy). A run is a method name for the trainer plus the options it changes.
import { UserError } from '../errors';
import { METHODS, singleAnnotatorOf } from '../methods/registry';
import { TrainOptions } from '../train/trainer';

export interface PlannedRun {
  /** Unique within the experiment: 'single:2', 'mv-unet', 'avap', 'avap@code', … */
  id: string;
  /** Folder name under OUT/runs and OUT/eval (no ':' so it is portable). */
  folder: string;
  /** Row label in the tables: 'M2', 'MV-UNet', 'AVAP', … */
  label: string;
  /** `--method` for the trainer. */
  method: string;
  /** Training options this run sets on top of the experiment's. */
  overrides: Partial<TrainOptions>;
  /** Epochs of each training stage, for progress and ETA. */
  stageEpochs: number[];
}

/** The rows of Table II, in the paper's order; `single` expands to single:1..single:M. */
export const DEFAULT_METHODS = ['single', 'mh-unet', 'mv-unet', 'ls-unet', 'cm-net', 'mr-net', 'padl', 'avap'];

const LABELS: Record<string, string> = {
  'mh-unet': 'MH-UNet', 'mv-unet': 'MV-UNet', 'ls-unet': 'LS-UNet', 'cm-net': 'CM-Net', 'mr-net': 'MR-Net', padl: 'PADL', avap: 'AVAP',
};

export interface Budget {
  epochs: number;
  preferenceEpochs: number;
}

/**
 * `--methods` names → runs in the paper's row order (M1..MM, MH-UNet, …, AVAP) whatever the order given,
 * validated against the dataset's M (unknown names are a UserError).
 */
export function planMethods(names: string[], annotators: number, budget: Budget): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (const name of names) {
    const expanded = name === 'single' ? Array.from({ length: annotators }, (_, k) => `single:${k + 1}`) : [name];
    for (const id of expanded) {
      const k = singleAnnotatorOf(id, annotators, '--methods');
      if (k === null && !(id in METHODS)) throw new UserError(`--methods: unknown method '${id}' (known: single, ${Object.keys(METHODS).join(', ')})`);
      if (runs.some((r) => r.id === id)) continue;
      runs.push({
        id, folder: id.replace(':', '-'), label: k !== null ? `M${k}` : LABELS[id], method: id, overrides: {},
        stageEpochs: id === 'avap' ? [budget.epochs, budget.preferenceEpochs] : [budget.epochs],
      });
    }
  }
  const rank = (r: PlannedRun) => {
    const k = singleAnnotatorOf(r.id);
    return k !== null ? k / 1000 : 1 + DEFAULT_METHODS.indexOf(r.id);
  };
  return runs.sort((a, b) => rank(a) - rank(b));
}

export interface AblationRun extends PlannedRun {
  table: 'III' | 'IV' | 'V';
}

/**
 * The AVAP variants of Tables III–V. Each table also lists the default AVAP row, so it is not repeated
 * here. Table III's other row needs encoder weights: without --pretrained the default AVAP is the
 * "w/o" row and the "w" row is left out; with it, the default AVAP is "w" and a scratch variant is added.
 * Joint training (Table V) gets the two-step budget in one stage (epochs + preference epochs).
 */
export function planAblations(structures: number, budget: Budget, pretrained: boolean): AblationRun[] {
  const two = [budget.epochs, budget.preferenceEpochs];
  const variant = (table: AblationRun['table'], id: string, label: string, overrides: Partial<TrainOptions>, stageEpochs = two): AblationRun =>
    ({ table, id: `avap@${id}`, folder: `avap-${id}`, label, method: 'avap', overrides, stageEpochs });
  const jointEpochs = budget.epochs + budget.preferenceEpochs;
  const joint = (id: string, label: string, avmShare: number) => {
    const weights = [...Array(structures).fill(avmShare / structures), 1 - avmShare].map((w) => Math.round(w * 1e6) / 1e6);
    return variant('V', id, label, { strategy: 'joint', jointWeights: weights, variationEpochs: jointEpochs, preferenceEpochs: 0 }, [jointEpochs]);
  };
  const fmt = (share: number) => [...Array(structures).fill(share / structures), 1 - share].map((w) => +w.toFixed(3)).join(', ');
  return [
    ...(pretrained ? [variant('III', 'scratch', 'AVAP w/o ImageNet pre-training', { pretrained: undefined })] : []),
    variant('IV', 'code', 'task coding only', { conditioning: 'code' }),
    variant('IV', 'features', 'feature coding only', { conditioning: 'features' }),
    joint('joint-average', 'Average weight', structures / (structures + 1)),
    joint('joint-apm-heavy', `Weight (${fmt(0.4)})`, 0.4),
    joint('joint-avm-heavy', `Weight (${fmt(0.8)})`, 0.8),
  ];
}
