// The dataset layout lives in @glimpse/layout, the one home of what the services keep in the store.
export * from "@glimpse/layout/datasets";
