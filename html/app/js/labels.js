// Hebrew names for the values the API sends as codes.  A code not listed
// here is shown as it is: a new state on the server never hides a row.

const table = {
    // the registry's states of a live call (src/ngx_agentlocator_call_state.c)
    state: {
        armed: 'ממתינה לזרם', streaming: 'בשיחה', stopped: 'הזרם נעצר',
        redirecting: 'מועברת להקלטה', redirected: 'הועברה להקלטה',
        completed: 'הסתיימה', dropped: 'הזרם נפל', fallback: 'בהקלטה',
    },
    // Twilio's CallStatus
    callStatus: {
        queued: 'בתור', initiated: 'בחיוג', ringing: 'מצלצלת', 'in-progress': 'פעילה',
        completed: 'הושלמה', busy: 'תפוס', failed: 'נכשלה', 'no-answer': 'אין מענה',
        canceled: 'בוטלה',
    },
    // why the watchdog redirected, and how it ended
    reason: {
        no_stream_start: 'הזרם לא התחיל', no_media: 'אין שמע', stream_dropped: 'הזרם נפל',
    },
    outcome: {
        pending: 'בתהליך', done: 'הצליחה', redirected: 'הצליחה', gave_up: 'נכשלה',
        cancelled: 'בוטלה', call_ended: 'השיחה הסתיימה', refused: 'נדחתה',
    },
    // a call's timeline (call_events.event)
    event: {
        incoming: 'שיחה נכנסה', status: 'סטטוס שיחה', stream_start: 'הזרם התחיל',
        stream_stop: 'הזרם הסתיים', stream_drop: 'הזרם נפל', stream_error: 'תקלה בזרם',
        stream_status: 'דיווח זרם מ־Twilio', stream_ended: 'חזרה מהזרם',
        watchdog_attempt: 'ניסיון העברה להקלטה', watchdog_outcome: 'תוצאת ההעברה',
        recording: 'הקלטה', transcript: 'תמלול', transcript_failed: 'התמלול נכשל',
    },
    // a WhatsApp message's status
    message: {
        queued: 'בתור', sending: 'נשלחת', sent: 'נשלחה', delivered: 'נמסרה',
        read: 'נקראה', undelivered: 'לא נמסרה', failed: 'נכשלה', received: 'התקבלה',
    },
    source: { twilio: 'Twilio', stream: 'מהזרם' },
};

export function label(kind, code) {
    if (code === null || code === undefined || code === '') return '—';
    return table[kind]?.[code] ?? code;
}

// One of a few colours per value, for a calm status dot.
export function tone(code) {
    switch (code) {
    case 'streaming': case 'in-progress': case 'sent': case 'delivered': case 'read':
    case 'received': case 'done': case 'redirected':
        return 'good';
    case 'armed': case 'ringing': case 'queued': case 'sending': case 'redirecting':
    case 'pending': case 'fallback':
        return 'wait';
    case 'dropped': case 'failed': case 'undelivered': case 'gave_up': case 'busy':
    case 'no-answer': case 'refused':
        return 'bad';
    default:
        return 'quiet';
    }
}
