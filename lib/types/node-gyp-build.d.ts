declare module 'node-gyp-build' {
  /** Loads the addon built or prebuilt for this platform under `dir`. */
  function load(dir: string): unknown;
  export = load;
}
