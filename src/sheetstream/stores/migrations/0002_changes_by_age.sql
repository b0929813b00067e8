-- Retention looks up the newest change older than the age limit at every commit.
CREATE INDEX changes_by_age ON changes (source_id, epoch, at);
