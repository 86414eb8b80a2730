/**
 * Prediction on 3D volumes (../data/volumes.ts): every slice across the slice axis through the model,
 * each calibrated map resized back to the slice and put in its place, so the volume's map lines up
 * with the image voxel for voxel.
 */
import type { CaseRecord } from '../data/dataset';
import { resizeBilinear } from '../data/resize';
import { placeSlice, sliceOfVolume, sliceSize } from '../data/volumes';
import { PredictionEngine } from './engine';

/** The calibrated map of each of the engine's structures over a volume case (x fastest), in [0, 1]. */
export async function predictVolume(engine: PredictionEngine, c: CaseRecord, axis: number, batchSize = 4): Promise<Float32Array[]> {
  const { size: S, channels: C, structures } = engine;
  const volume = c.volume!;
  const [x, y, z] = volume.shape;
  const { width, height } = sliceSize(volume, axis);
  const maps = structures.map(() => new Float32Array(x * y * z));
  const depth = volume.shape[axis];
  for (let start = 0; start < depth; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, depth - start) }, (_, i) => start + i);
    const batch = new Float32Array(indices.length * C * S * S);
    for (let i = 0; i < indices.length; i++) {
      batch.set(engine.prepareDecoded(await sliceOfVolume(c, axis, indices[i], engine.intensity)).input, i * C * S * S);
    }
    const out = await engine.predict(batch, indices.length);
    indices.forEach((index, i) => {
      structures.forEach((_, s) => {
        const map = resizeBilinear(out.calibrated(i, s), S, S, 1, width, height);
        for (let p = 0; p < map.length; p++) map[p] = Math.min(1, Math.max(0, map[p]));
        placeSlice(maps[s], volume.shape, axis, index, map);
      });
    });
  }
  return maps;
}
