// The multi-annotator metrics of one image and one structure (Mean Voting, Average, cross table, GED,
// ECE, identifiability, hard Dice, IoU): their types, the plain reference implementation and the fused
// one that evaluation and training validation run.
export * from './caseMetrics';
export * from './plain';
export * from './fused';
