// The tensor engine's public surface, mirroring PyTorch's layout: torch.*, torch.nn, torch.nn.functional, torch.optim.
export * from './tensor';
export * from './creation';
export * as F from './functional';
export * as nn from './nn';
export * as optim from './optim';
export * as distributed from './distributed';
export { saveStateDict, loadStateDict } from './serialization';
export * from './precision';
export * from './device';
