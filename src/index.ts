// The library: what `require('avap')` gives. The command line (src/cli) is a thin layer over these.
export { train, TRAIN_DEFAULTS } from './train/trainer';
export type { TrainOptions, TrainSettings, TrainSummary, TrainEvent } from './train/trainer';
export { describeTrainEvent } from './train/events';
export { predict, predictToFolder, listInputs } from './predict/predict';
export type { PredictRequest, PredictOptions, PredictInput } from './predict/predict';
export { loadRun } from './train/loadRun';
export type { LoadedRun } from './train/loadRun';
export { evaluate, evaluateModel } from './eval/evaluateModel';
export type { EvaluateRequest } from './eval/evaluateModel';
export { evaluatePredictions, referenceFromDataset } from './eval/evaluate';
export type { EvaluateOptions, ReferenceSource } from './eval/evaluate';
export type { EvaluationSummary } from './results/summary';
export { runExperiment as experiment } from './experiment/experiment';
export type { ExperimentOptions, ExperimentResult } from './experiment/experiment';
export { EXPERIMENT_PROFILE_NAMES, experimentProfile } from './experiment/profiles';
export { openDataset, selectCases } from './data/dataset';
export type { Dataset, CaseRecord } from './data/dataset';
export { writeSynthDataset } from './data/synth';
export { UserError } from './errors';

// Methods: the registry, what a method provides, and the pieces the built-in ones share.
export { registerMethod, methodDescriptors, methodConfigFor, buildMethod, resolveMethod } from './methods/registry';
export type { MethodDescriptor, MethodOption, MethodContext, OptionValue } from './methods/descriptor';
export type { Method, MethodConfig, Stage, StagePlan, Prediction, TrainingBatch, SelectionScore } from './methods/method';
export { availableRows, broadcastToAnnotators, pickAnnotators, pickRows } from './methods/annotators';
export * as losses from './methods/losses';

// Encoders: the registry (plain data) and the interface a backbone depends on.
export { ENCODERS, createEncoder, encoderNames } from './models/encoders/registry';
export type { EncoderEntry } from './models/encoders/registry';
export type { Encoder } from './models/encoders/encoder';
export { UnetBackbone } from './models/backbone';

// The tensor engine, mirroring PyTorch: torch.nn, torch.F, torch.optim, tidy, tensor, …
export * as torch from './torch';
