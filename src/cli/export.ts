import * as fs from 'node:fs';
import { Command } from 'commander';
import { UserError } from '../errors';
import { exportRun } from '../export/export';
import { DEFAULT_OPSET, OPSET_RANGE } from '../export/onnx';
import { viewerSite, writeSite } from '../viewer/site';
import { parseAnnotatorList, parseIntFlag } from '../util/flags';

/** `avap export`: parses flags and calls exportRun() (and writes the viewer folder with --viewer). */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('write a trained model as one ONNX file (input: the image in [0, 1] at the training size; outputs: calibrated and per-annotator maps)')
    .requiredOption('--model <run>', 'a trained run folder (from avap train)')
    .requiredOption('--out <file>', 'the ONNX file to write, e.g. model.onnx')
    .option('--opset <n>', `ONNX opset (${OPSET_RANGE[0]}..${OPSET_RANGE[1]})`, String(DEFAULT_OPSET))
    .option('--annotators <list>', "'all' or 1-based annotator numbers to give outputs, e.g. 1,3", 'all')
    .option('--viewer <dir>', 'also write the browser viewer with this model into <dir> (serve it with any static web server)')
    .action((o: { model: string; out: string; opset: string; annotators: string; viewer?: string }) => {
      const opset = parseIntFlag('--opset', o.opset, OPSET_RANGE[0], OPSET_RANGE[1]);
      const annotators = parseAnnotatorList(o.annotators);
      if (fs.existsSync(o.out) && fs.statSync(o.out).isDirectory()) throw new UserError(`--out: ${o.out} is a folder; give a file name such as ${o.out}/model.onnx`);
      const exported = exportRun(o.model, o.out, { opset, annotators });
      const mb = (exported.bytes.byteLength / 2 ** 20).toFixed(1);
      process.stdout.write(`wrote ${o.out} (${mb} MiB, opset ${opset}, ${exported.info.outputs.length} outputs: ${exported.info.outputs.map((x) => x.name).join(', ')}) in ${exported.seconds.toFixed(1)} s\n`);
      if (o.viewer !== undefined) {
        writeSite(viewerSite(exported), o.viewer);
        process.stdout.write(`wrote the viewer to ${o.viewer} (serve the folder over HTTP, e.g. python3 -m http.server -d ${o.viewer})\n`);
      }
    });
}
