/**
 * sheetstream hint: tells a sheetstream server that this spreadsheet changed, so it reads it within a second
 * instead of at its next poll. A hint carries no data: sheetstream still reads and diffs the values.
 *
 * Setup (see docs/google.md):
 *  1. Extensions > Apps Script, paste this file, set SHEETSTREAM_URL and SECRET (the server's
 *     --apps-script-secret / SHEETSTREAM_APPS_SCRIPT_SECRET).
 *  2. Run `install` once from the editor and accept the permissions (UrlFetchApp needs them).
 *     Simple triggers (a function merely named onEdit) may not call UrlFetchApp: the installable ones below can.
 *
 * Edits made through the API or by other scripts, and formula recalculation, fire no trigger: sheetstream's
 * own polling covers those.
 */
var SHEETSTREAM_URL = 'https://sheetstream.example.com';  // the server's public base URL
var SECRET = 'change-me';                                   // the same value as --apps-script-secret

function install() {
  var sheet = SpreadsheetApp.getActive();
  ScriptApp.getProjectTriggers().forEach(function (trigger) {
    if (trigger.getHandlerFunction() === 'sheetstreamHint') ScriptApp.deleteTrigger(trigger);
  });
  ScriptApp.newTrigger('sheetstreamHint').forSpreadsheet(sheet).onEdit().create();
  ScriptApp.newTrigger('sheetstreamHint').forSpreadsheet(sheet).onChange().create();
}

function sheetstreamHint(e) {
  var payload = {
    spreadsheet_id: SpreadsheetApp.getActive().getId(),
    change_type: (e && e.changeType) || 'EDIT'
  };
  try {
    UrlFetchApp.fetch(SHEETSTREAM_URL.replace(/\/$/, '') + '/v1/hooks/apps-script', {
      method: 'post',
      contentType: 'application/json',
      headers: { 'X-Sheetstream-Secret': SECRET },
      payload: JSON.stringify(payload),
      muteHttpExceptions: true  // a hint that fails must never disturb the person editing
    });
  } catch (err) {
    console.warn('sheetstream hint failed: ' + err);
  }
}
