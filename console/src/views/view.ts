/** One section of the console, shown by its hash (#ingest, #documents, #search, #chat). */
export interface View {
  id: string;
  /** The navigation label. */
  title: string;
  root: HTMLElement;
  /** Called each time the section is shown. */
  show(): void;
  /** Called when another section is shown instead. */
  hide?(): void;
  /** The key or end user changed: forget what belonged to the previous one. */
  reset(): void;
}
