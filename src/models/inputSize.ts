// Kept apart from the encoders so that readers of exported models can use it without loading torch.

/** The largest input side `train --size` accepts, and so the largest an exported model may claim. */
export const MAX_INPUT_SIZE = 4096;
