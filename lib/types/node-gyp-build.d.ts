declare module 'node-gyp-build' {
  /** Loads the addon built or prebuilt for this platform under `dir`. */
  function load(dir: string): unknown;
  namespace load {
    /** The file load(dir) would load; throws when there is none. */
    function path(dir: string): string;
  }
  export = load;
}
