package main

import (
	"github.com/spf13/cobra"
)

func newRenderCommand(_ *settings) *cobra.Command {
	return &cobra.Command{Use: "render [FILE]", Hidden: true}
}
