export { TrackingProjection, projectMessage } from './project.ts';
export { DEFAULT_RESULT_SIZE, matchesRow, parseTrackingTime, type TrackingQuery } from './query.ts';
export { MSGTRK_FIELDS, TRACKING_EVENT_IDS, TRACKING_FIELDS, TRACKING_SOURCES, type TrackingEventId, type TrackingRow, type TrackingSource } from './rows.ts';
export {
  TABLE_COLUMNS,
  msgtrkFileName,
  msgtrkFiles,
  msgtrkHeader,
  msgtrkLine,
  trackingCsv,
  trackingJson,
  trackingTable,
  type MsgtrkOptions,
} from './format.ts';
export { readTracking } from './read.ts';
