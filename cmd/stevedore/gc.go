package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/server/storage"
)

func newGCCmd() *cobra.Command {
	var (
		root string
		o    storage.GCOptions
	)
	cmd := &cobra.Command{
		Use:   "gc --root DIR [--dry-run] [--delete-untagged]",
		Short: "Remove blobs no manifest of a `stevedore serve` store references",
		Long: `gc is a mark-and-sweep collection of a registry store (see serve). It is safe to
run beside a running server: each repository is swept under the lock a manifest push
holds while it checks its references, blobs written, linked or found with HEAD within --grace are kept
(so a push in progress loses nothing), and upload sessions are kept until they expire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return fmt.Errorf("gc: --root is required (the directory given to stevedore serve --root)")
			}
			if o.UploadTTL <= 0 {
				// The store would use its 24h default.
				return fmt.Errorf("gc: --upload-ttl %s: want a positive duration", o.UploadTTL)
			}
			switch {
			case o.Grace < 0:
				return fmt.Errorf("gc: --grace %s is negative", o.Grace)
			case o.Grace == 0:
				o.Grace = storage.NoGrace // asked for: a push in progress may lose blobs
			}
			st, err := storage.Open(root, storage.Options{Existing: true})
			if err != nil {
				return err
			}
			rep, err := st.GC(cmd.Context(), o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			verb := "removed"
			if o.DryRun {
				verb = "would remove"
			}
			for _, m := range rep.ManifestsDropped {
				fmt.Fprintf(w, "untagged manifest %s: %s\n", verb, m)
			}
			fmt.Fprintf(w, "%d repositories; %s %d blob links, %d shared blobs (%d bytes), %d manifests, %d stale uploads\n",
				rep.Repositories, verb, rep.BlobsUnlinked, rep.SharedRemoved, rep.BytesFreed, len(rep.ManifestsDropped), rep.UploadsRemoved)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "registry storage directory (required)")
	f.BoolVar(&o.DryRun, "dry-run", false, "report what would be removed, remove nothing")
	f.BoolVar(&o.DeleteUntagged, "delete-untagged", false, "also drop manifests no tag reaches (keeping referrers of kept ones)")
	f.DurationVar(&o.Grace, "grace", 15*time.Minute, "keep blobs written, linked or found with HEAD within this long (0: none, which a push in progress may not survive)")
	f.DurationVar(&o.UploadTTL, "upload-ttl", 24*time.Hour, "remove upload sessions idle for this long")
	return cmd
}
