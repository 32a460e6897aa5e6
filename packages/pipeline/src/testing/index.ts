/** Test helpers (`@glimpse/pipeline/testing`): the Flickr8K-format fixture, a local HTTP server, fault-injecting stores. */
export { archiveRoutes, makeFlickr8kFixture, type Fixture, type FixtureOptions } from "./fixture.js";
export { startStaticServer, type StaticServer, type Fault, type RequestLog } from "./http-server.js";
export { faultyStore } from "./stores.js";
export { checkCrd, loadArgoCrds, type Crd } from "./argo-crds.js";
export { orientedVariants, badPhotoCorpus, pngBomb, jpegBomb } from "./photos.js";
