-- Who announces each approval (docs/approvals.md, "Notifications"): approval
-- services on this schema claim an approval's notification here, so one of
-- them sends it. A claim lapses at claimed_until_ms (its claimant died while
-- sending) and may then be taken again; a settled one never is.
CREATE TABLE approval_notifications (
  decision_id      text PRIMARY KEY REFERENCES decisions (id) ON DELETE CASCADE,
  claimed_by       text NOT NULL,
  claimed_until_ms bigint NOT NULL,
  claims           integer NOT NULL DEFAULT 1,
  delivered        boolean,
  settled_at_ms    bigint,
  CONSTRAINT settled_has_time CHECK ((delivered IS NULL) = (settled_at_ms IS NULL))
);
