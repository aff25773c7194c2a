// The bounds a pack's outputs must keep against FlagEmbedding's f32 reference (issue 11): the
// cosine of each text's dense vector, and the smallest cosine of a ColBERT row with its reference
// row. For the tests of packs however they are made (`m3 convert`, or converted while downloading).
export const FLOOR = { f16: { dense: 0.9999, colbert: 0.999 }, int8: { dense: 0.995, colbert: 0.99 } };
