-- A write planned on a row it read earlier first locks that row and checks it is still as read; when it is not, the
-- batch fails with SQLSTATE EG001 and nothing of it is written (core/db/errors.ts `CHANGED`). A PATCH racing a
-- DELETE revived the document, two PATCHes at once lost one's change, and a chat turn racing the deletion of its
-- conversation made the conversation again (core/ingest `patch`, core/chat/turn.ts).
create or replace function engram_expect(ok boolean, what text) returns void language plpgsql volatile as $$
begin
  if not coalesce(ok, false) then
    raise exception '%', what using errcode = 'EG001';
  end if;
end $$;
