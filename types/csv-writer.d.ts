// csv-writer publishes its TypeScript sources as its types, which do not compile under this
// project's strict ESM settings; this declares the part we use.
declare module "csv-writer" {
  export interface ArrayCsvStringifier {
    getHeaderString(): string | null;
    stringifyRecords(records: ReadonlyArray<ReadonlyArray<string | number>>): string;
  }
  export function createArrayCsvStringifier(params: {
    header?: ReadonlyArray<string | { id: string; title: string }>;
    fieldDelimiter?: string;
    recordDelimiter?: string;
    alwaysQuote?: boolean;
  }): ArrayCsvStringifier;
}
