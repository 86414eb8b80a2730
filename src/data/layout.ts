// Per-annotator data has one axis order: annotator before structure. A batch's tensors are
// [case, annotator, structure, H, W] ([B, M, K, H, W]), their flat buffers the same row-major order,
// and tables of one value per (annotator, structure) are [annotator][structure]; per-case data without
// an annotator axis (calibrated maps, mean votes, agreement counts) is [case, structure, H, W].
// These helpers compute the offsets, so no file writes the arithmetic by hand.

/** Offsets into flat buffers laid out [item, annotator, structure, pixel] and [item, structure, pixel]. */
export class AnnotatorLayout {
  /**
   * @param annotators M
   * @param structures K
   * @param plane numbers per map (H·W; 1 for tables of one value per annotator and structure)
   */
  constructor(readonly annotators: number, readonly structures: number, readonly plane = 1) {}

  /** Index of (item, annotator) in an [item, annotator] table, such as a batch's `available`. */
  slot(item: number, annotator: number): number {
    return item * this.annotators + annotator;
  }

  /** First number of the (item, annotator, structure) map. */
  offset(item: number, annotator: number, structure: number): number {
    return (this.slot(item, annotator) * this.structures + structure) * this.plane;
  }

  /** The (item, annotator, structure) map of an [item, annotator, structure, pixel] buffer (a view). */
  map<T extends Float32Array | Uint8Array>(buffer: T, item: number, annotator: number, structure: number): T {
    const at = this.offset(item, annotator, structure);
    return buffer.subarray(at, at + this.plane) as T;
  }

  /** First number of the (item, structure) map of an [item, structure, pixel] buffer. */
  structureOffset(item: number, structure: number): number {
    return (item * this.structures + structure) * this.plane;
  }

  /** The (item, structure) map of an [item, structure, pixel] buffer (a view). */
  structureMap<T extends Float32Array | Uint8Array>(buffer: T, item: number, structure: number): T {
    const at = this.structureOffset(item, structure);
    return buffer.subarray(at, at + this.plane) as T;
  }
}
