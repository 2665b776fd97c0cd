// Package notify is the notification service: it follows the case and
// alert changes, decides from rules/notify.yaml who is told what, on which
// channel and when, and delivers durably (ARCHITECTURE.md,
// "Notifications").
package notify
