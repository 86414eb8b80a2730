// AVAP's ablation study, the paper's Tables III–V: pre-training (III), what the APM controller is
// conditioned on (IV) and the training strategy (V). Each table also lists the default AVAP run.
import { averageMeanTable, conditioningTable, TableRow } from '../results/tables';
import { AblationRun, AblationStudy } from './descriptor';

type Table = 'III' | 'IV' | 'V';

/**
 * Table III's other row needs encoder weights: without --pretrained the default AVAP is the "w/o" row
 * and the "w" row is left out; with it, the default AVAP is "w" and a scratch variant is added.
 * Joint training (Table V) gets the two-step budget in one stage (steps + preference steps).
 */
export const avapAblations: AblationStudy = {
  description: 'AVAP: Tables III (pre-training), IV (controller conditioning) and V (training strategy)',
  plan({ structures, steps, options, pretrained }) {
    const variant = (table: Table, id: string, label: string, overrides: AblationRun['overrides']): AblationRun =>
      ({ table, id: `avap@${id}`, folder: `avap-${id}`, label, overrides });
    const jointSteps = steps + (options.preferenceSteps as number);
    const weights = (avmShare: number) => [...Array(structures).fill(avmShare / structures), 1 - avmShare];
    const joint = (id: string, label: string, avmShare: number) => variant('V', id, label, {
      steps: jointSteps,
      methodOptions: { strategy: 'joint', jointWeights: weights(avmShare).map((w) => Math.round(w * 1e6) / 1e6), preferenceSteps: 0 },
    });
    const fmt = (share: number) => weights(share).map((w) => +w.toFixed(3)).join(', ');
    return [
      ...(pretrained ? [variant('III', 'scratch', 'AVAP w/o ImageNet pre-training', { fromScratch: true })] : []),
      variant('IV', 'code', 'task coding only', { methodOptions: { conditioning: 'code' } }),
      variant('IV', 'features', 'feature coding only', { methodOptions: { conditioning: 'features' } }),
      joint('joint-average', 'Average weight', structures / (structures + 1)),
      joint('joint-apm-heavy', `Weight (${fmt(0.4)})`, 0.4),
      joint('joint-avm-heavy', `Weight (${fmt(0.8)})`, 0.8),
    ];
  },

  tables({ summary, runs, baseId, structures, pretrained }) {
    const row = (id: string, label: string): TableRow[] => {
      const s = summary(id);
      return s ? [{ label, summary: s }] : [];
    };
    const byTable = (t: Table) => runs.filter((r) => r.table === t);
    const rows = (t: Table) => byTable(t).flatMap((r) => row(r.id, r.label));
    const cond = (r: { id: string; label: string } | undefined, code: boolean, features: boolean) => (r ? row(r.id, r.label) : []).map((x) => ({ ...x, code, features }));
    const [codeOnly, featuresOnly] = byTable('IV');
    return {
      'table3.md': averageMeanTable(
        [...rows('III'), ...row(baseId, pretrained ? 'AVAP w ImageNet pre-training' : 'AVAP w/o ImageNet pre-training')],
        `# Table III — effect of ImageNet pre-training (soft Dice %, '${structures}')`, 'Model',
        pretrained ? undefined : 'Only the row without pre-training: pass --pretrained FILE (torchvision ResNet weights converted to safetensors) for the other.'),
      'table4.md': conditioningTable([...cond(codeOnly, true, false), ...cond(featuresOnly, false, true), ...cond({ id: baseId, label: 'AVAP' }, true, true)],
        `# Table IV — what the APM controller is conditioned on (soft Dice %, '${structures}')`),
      'table5.md': averageMeanTable([...rows('V'), ...row(baseId, 'Our (two-step)')],
        `# Table V — training strategy (soft Dice %, '${structures}'); joint rows weight the AVM branches, then the APM`, 'Methods'),
    };
  },
};
