export { readPublished, readBlob, readCaptions, readSplits, type PublishedDataset } from "@glimpse/layout/datasets";
